"""The KPI line chart: valid SVG whatever the names, PNG too, and safe in parallel threads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

from api.kpi.kpi_chart import line_chart

SVG = "{http://www.w3.org/2000/svg}"
PERIODS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def texts(svg: bytes) -> set[str]:
    return {t.text for t in ET.fromstring(svg).iter(f"{SVG}text")}


def series_groups(svg: bytes) -> list[ET.Element]:
    return [g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("id", "")[:7] == "series-"]


def test_one_line_per_series_with_a_marker_per_value_and_a_legend():
    svg = line_chart("opened per day", PERIODS, {"mail": [1, None, 3], "vpn": [2, 2, 2]})
    mail, vpn = series_groups(svg)
    assert len(mail.findall(f".//{SVG}use")) == 2 and len(vpn.findall(f".//{SVG}use")) == 3
    assert {"opened per day", "mail", "vpn", *PERIODS} <= texts(svg)


def test_markup_and_control_characters_in_a_label_do_not_break_the_svg():
    name = "<script>x</script>\x07\x1b"
    svg = line_chart("t", PERIODS, {name: [1, 2, 3], "$5 & _x": [3, 2, 1]})
    root = ET.fromstring(svg)  # well-formed XML: \x07 and \x1b are not allowed in XML
    assert not list(root.iter(f"{SVG}script"))
    assert {"<script>x</script>\ufffd\ufffd", "$5 & _x"} <= texts(svg)


def test_a_long_name_is_cut_in_the_legend():
    assert "x" * 24 in texts(line_chart("t", PERIODS, {"x" * 40: [1, 2, 3]}))


def test_no_values_says_no_data():
    assert "no data" in texts(line_chart("t", PERIODS, {"all": [None, None, None]}))
    assert "no data" in texts(line_chart("t", [], {}))


def test_png():
    assert line_chart("t", PERIODS, {"all": [1, 2, 3]}, format="png").startswith(b"\x89PNG")


def test_charts_drawn_in_parallel_threads_do_not_mix():
    def draw(n: int) -> bytes:
        return line_chart(f"chart {n}", PERIODS, {f"series {n}": [n, n + 1, n + 2]})

    with ThreadPoolExecutor(4) as pool:
        charts = list(pool.map(draw, range(16)))
    for n, svg in enumerate(charts):
        assert {f"chart {n}", f"series {n}"} <= texts(svg)
        assert len(series_groups(svg)) == 1
        assert not {t for t in texts(svg) if t.startswith("chart ")} - {f"chart {n}"}


def test_a_thread_s_reused_figure_draws_byte_for_byte_what_a_new_figure_draws():
    charts = [
        ("a", PERIODS, {"mail": [1, None, 3], "vpn": [2, 2, 2]}, "opened", "svg"),
        ("b", PERIODS, {"all": [None, None, None]}, "", "svg"),
        ("c", PERIODS[:2], {"x": [-5.5, 12_000.0]}, "backlog", "svg"),
        ("d", [f"2026-{m:02d}" for m in range(1, 13)], {"y": list(range(12))}, "", "png"),
        ("a", PERIODS, {"mail": [1, None, 3], "vpn": [2, 2, 2]}, "opened", "svg"),
    ]
    in_a_row = [line_chart(*chart) for chart in charts]  # one figure, emptied each time
    with ThreadPoolExecutor(1) as pool:  # each in a thread of its own: a new figure
        new = [pool.submit(_in_new_thread, chart).result() for chart in charts]
    assert in_a_row == new
    assert in_a_row[0] == in_a_row[-1]


def _in_new_thread(chart: tuple) -> bytes:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(line_chart, *chart).result()


def test_more_points_than_can_be_told_apart_are_drawn_as_lines_only():
    days = [f"2026-03-{d:02d}" for d in range(1, 21)]
    svg = line_chart("t", days, {f"line {n}": list(range(20)) for n in range(4)})  # 80 points
    assert [len(g.findall(f".//{SVG}use")) for g in series_groups(svg)] == [0, 0, 0, 0]
    few = line_chart("t", days, {f"line {n}": list(range(20)) for n in range(3)})  # 60
    assert [len(g.findall(f".//{SVG}use")) for g in series_groups(few)] == [20, 20, 20]
