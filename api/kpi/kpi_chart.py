"""A KPI line chart drawn by matplotlib: axes, ticks, one line per series and a legend.

matplotlib is imported on the first chart, not at start-up, which it would slow down. Each
thread draws on its own `Figure`, never pyplot's global current figure, so that requests
render in parallel threads without drawing on each other's charts. A thread keeps its figure
and empties it for the next chart: making an Axes and its ticks costs more than drawing
them, and the chart comes out byte for byte as from a new figure (tests/unit/test_kpi_chart.py).
"""

from __future__ import annotations

import gc
import io
import math
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

Format = Literal["svg", "png"]
MEDIA_TYPES: dict[str, str] = {"svg": "image/svg+xml", "png": "image/png"}
SIZE, DPI = (9.0, 4.2), 100  # 900 x 420 px
LEGEND_CHARS, X_LABELS = 24, 6  # level period labels: six dates fit the width
LEGEND_STEP = 0.065  # an entry's height, in axes heights (about 19 px)
MARKED_POINTS = 60  # of all the lines together
MARGINS = {"left": 0.09, "right": 0.72, "top": 0.9, "bottom": 0.2}
# Set once for the process (rcParams are global; rc_context would not be thread safe):
# SVG text stays <text> (searchable, and what the tests read) rather than glyph outlines,
# and a `$` in a group name is a dollar sign, not the start of a formula.
SETTINGS: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "svg.hashsalt": "itsm",
}


@lru_cache(maxsize=1)
def chart_classes() -> tuple[type[Figure], Any]:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matplotlib.rcParams.update(SETTINGS)
    # matplotlib's modules and caches live as long as the process: out of the collector's
    # reach, as what start-up loaded is (api/app.py), or every full collection walks them.
    gc.collect()
    gc.freeze()
    return Figure, FigureCanvasAgg


def line_chart(
    title: str,
    x_labels: list[str],
    series: dict[str, list[float | None]],
    y_label: str = "",
    format: Format = "svg",
) -> bytes:
    """`series`: name -> one value per x label (None: no value, the line breaks there)."""
    figure, axes = _emptied_axes()
    draw_series(axes, series)
    draw_legend(axes, list(series))
    decorate_axes(
        axes, chart_text(title), [chart_text(label) for label in x_labels], chart_text(y_label)
    )
    output = io.BytesIO()
    # No date in the metadata: the same figures give the same bytes (and ETags).
    figure.savefig(output, format=format, metadata={"Date": None} if format == "svg" else None)
    return output.getvalue()


_THREAD = threading.local()


def _emptied_axes() -> tuple[Figure, Axes]:
    """This thread's figure and axes, as a new one would be."""
    made = getattr(_THREAD, "chart", None)
    if made is None:
        made = _THREAD.chart = _new_axes()
    figure, axes = made
    for artist in [*axes.lines, *axes.texts, *axes.artists]:
        artist.remove()
    axes.set_prop_cycle(None)  # the first line blue again
    axes.relim()
    axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0))  # a new axes' view, what no data leaves
    axes.set_autoscale_on(True)
    return figure, axes


def _new_axes() -> tuple[Figure, Axes]:
    figure_class, canvas_class = chart_classes()
    figure = figure_class(figsize=SIZE, dpi=DPI)
    # Fixed margins, sized for the rotated period labels below and a legend of 24-character
    # names on the right: a layout engine would measure every text and draw twice.
    figure.subplots_adjust(**MARGINS)
    canvas_class(figure)
    axes = figure.add_subplot()
    gc.collect()
    gc.freeze()  # the thread's figure lives as long as its thread: see chart_classes
    return figure, axes


def draw_series(axes: Axes, series: dict[str, list[float | None]]) -> None:
    """One line per series, with its points marked."""
    # Points marked while they can be told apart: a long series, or many lines of points,
    # read as lines.
    marked = sum(len(points) for points in series.values()) <= MARKED_POINTS
    for index, points in enumerate(series.values()):
        values = [math.nan if v is None else v for v in points]  # NaN breaks the line
        marker = "o" if marked else None
        axes.plot(values, marker=marker, markersize=4, linewidth=2, gid=f"series-{index}")
    if all(v is None for points in series.values() for v in points):
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", color="#888")


def draw_legend(axes: Axes, names: list[str]) -> None:
    """The lines' names in order, right of the axes, each after a sample of its line. Placed
    at fixed steps: matplotlib's legend measures and lays out every entry, a third of a
    chart's drawing time."""
    from matplotlib.lines import Line2D

    for index, (name, line) in enumerate(zip(names, axes.get_lines(), strict=False)):
        y = 1.0 - (index + 0.5) * LEGEND_STEP
        sample = Line2D([1.03, 1.07, 1.11], [y, y, y])
        sample.update_from(line)  # its colour, width and marker (and its transform and clip)
        sample.set(transform=axes.transAxes, clip_on=False, gid=None, markevery=[1])
        axes.add_artist(sample)
        text = chart_text(str(name))[:LEGEND_CHARS]
        axes.text(1.13, y, text, transform=axes.transAxes, va="center", fontsize="small")


def decorate_axes(axes: Axes, title: str, x_labels: list[str], y_label: str) -> None:
    # At the top, said once: placed automatically, it measures every tick label first.
    axes.set_title(title, fontweight="bold", y=1.0)
    axes.set_ylabel(y_label)
    # At the figure's left edge, left of any tick label: placed automatically, it measures
    # every tick label first.
    axes.yaxis.set_label_coords(0.02, 0.5, transform=_figure_x(axes))
    every = max(1, math.ceil(len(x_labels) / X_LABELS))
    ticks = range(0, len(x_labels), every)
    axes.set_xticks(ticks, [x_labels[i] for i in ticks])
    axes.set_xlim(-0.5, max(len(x_labels), 1) - 0.5)
    axes.set_ylim(bottom=min(0.0, axes.get_ylim()[0]))
    axes.yaxis.set_major_formatter("{x:,g}")
    axes.grid(axis="y", color="#e0e0e0")


def _figure_x(axes: Axes) -> Any:
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(axes.figure.transFigure, axes.transAxes)


def chart_text(text: str) -> str:
    """Control characters (invalid in XML, or breaking the line) and lone surrogates shown
    as U+FFFD; markup needs nothing: matplotlib escapes text."""
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
