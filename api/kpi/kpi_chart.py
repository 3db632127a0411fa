"""A hand-written SVG line chart: axes, ticks, labels, one line per series and a legend.

No plotting library: the chart is a few dozen elements of plain SVG 1.1, escaped text only.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 70


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def line_chart(
    title: str, x_labels: list[str], series: dict[str, list[float | None]], y_label: str = ""
) -> str:
    """`series`: name -> one value per x label (None: no value, the line breaks there)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for points in series.values() for v in points if v is not None]
    low = min(0.0, min(values)) if values else 0.0
    high = max(values) if values else 1.0
    step = _nice_step(high - low)
    top = math.ceil(high / step) * step if high > low else low + step
    bottom = math.floor(low / step) * step
    n = len(x_labels)

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / n if n else 0)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - bottom) / (top - bottom))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="16"'
        f' font-weight="bold">{escape(title)}</text>',
    ]
    tick = bottom
    while tick <= top + step / 2:
        ty = y(tick)
        out.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + plot_w}" y2="{ty:.1f}" stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{escape(_fmt(tick))}</text>'
        )
        tick += step
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>')
    out.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}"'
        f' y2="{TOP + plot_h}" stroke="black"/>'
    )
    every = max(1, math.ceil(n / 15))
    for i, label in enumerate(x_labels):
        if i % every:
            continue
        lx, ly = x(i), TOP + plot_h + 14
        out.append(
            f'<line x1="{lx:.1f}" y1="{TOP + plot_h}" x2="{lx:.1f}"'
            f' y2="{TOP + plot_h + 4}" stroke="black"/>'
        )
        out.append(
            f'<text x="{lx:.1f}" y="{ly}" text-anchor="end"'
            f' transform="rotate(-35 {lx:.1f} {ly})">{escape(label)}</text>'
        )
    if y_label:
        out.append(
            f'<text x="16" y="{TOP + plot_h / 2:.0f}" text-anchor="middle"'
            f' transform="rotate(-90 16 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
        )
    for index, (name, points) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        runs, run = [], []
        for i, v in enumerate(points):
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append((x(i), y(v)))
        if run:
            runs.append(run)
        for part in runs:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in part)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
            out += [
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>' for px, py in part
            ]
        ly = TOP + 10 + 18 * index
        out.append(
            f'<rect x="{WIDTH - RIGHT + 15}" y="{ly - 9}" width="12" height="12" fill="{color}"/>'
        )
        out.append(f'<text x="{WIDTH - RIGHT + 32}" y="{ly + 1}">{escape(str(name)[:24])}</text>')
    if not values:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}"'
            ' text-anchor="middle" fill="#888">no data</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
