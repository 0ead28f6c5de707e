"""Charts as SVG text, made by the server: no JavaScript, no CDN, readable offline.

``line_chart`` draws reward curves (one line per policy, dashed reference lines for the oracle
and random choice); ``bar_chart`` draws signed horizontal bars (θ by feature label). Output is
deterministic for the same input, so it can be tested and cached.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "line_chart"]

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
)  # fmt: skip
_REFERENCE_STYLE = {"oracle": ("#333333", "6 3"), "random": ("#999999", "2 3")}


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    references: Mapping[str, Sequence[float]] | None = None,
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "mean reward",
    width: int = 720,
    height: int = 360,
) -> str:
    """An SVG line chart; ``references`` (e.g. oracle, random) are drawn dashed."""
    references = {k: v for k, v in (references or {}).items() if v}
    all_y = [y for ys in (*series.values(), *references.values()) for y in ys if math.isfinite(y)]
    low, high = (min(all_y), max(all_y)) if all_y else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    y_ticks = _ticks(low, high)
    low, high = min(low, y_ticks[0]), max(high, y_ticks[-1])
    x_low, x_high = (min(x), max(x)) if x else (0.0, 1.0)
    if x_high - x_low < 1e-9:
        x_high = x_low + 1
    left, right, top, bottom = 64, 16, 36 if title else 16, 48
    legend_rows = math.ceil((len(series) + len(references)) / 3)
    plot_h = height - top - bottom - 18 * legend_rows
    plot_w = width - left - right

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        return top + (high - v) / (high - low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title or y_label)}" class="chart">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="15" '
            f'font-family="sans-serif">{escape(title)}</text>'
        )
    for tick in y_ticks:
        y = py(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'font-family="sans-serif">{_fmt(tick)}</text>'
        )
    for tick in _ticks(x_low, x_high, 6):
        if x_low <= tick <= x_high:
            xpos = px(tick)
            parts.append(
                f'<text x="{xpos:.1f}" y="{top + plot_h + 16:.1f}" text-anchor="middle" '
                f'font-size="11" font-family="sans-serif">{_fmt(tick)}</text>'
            )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h:.1f}" fill="none" '
        f'stroke="#888888"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34:.1f}" text-anchor="middle" '
        f'font-size="12" font-family="sans-serif">{escape(x_label)}</text>'
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="12" '
        f'font-family="sans-serif" transform="rotate(-90 14 {top + plot_h / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    legend: list[tuple[str, str, str]] = []
    for i, (name, ys) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        legend.append((name, color, ""))
        parts.append(_polyline(x, ys, px=px, py=py, color=color, dash="", name=name))
    for name, ys in references.items():
        color, dash = _REFERENCE_STYLE.get(name, ("#555555", "4 4"))
        legend.append((name, color, dash))
        parts.append(_polyline(x, ys, px=px, py=py, color=color, dash=dash, name=name))
    for i, (name, color, dash) in enumerate(legend):
        lx = left + (i % 3) * (plot_w / 3)
        ly = height - 12 - 18 * (legend_rows - 1 - i // 3)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 22:.1f}" y2="{ly - 4}" '
            f'stroke="{color}" stroke-width="2.5"{dash_attr}/>'
            f'<text x="{lx + 28:.1f}" y="{ly}" font-size="12" font-family="sans-serif">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _polyline(
    x: Sequence[float],
    ys: Sequence[float],
    *,
    px: Callable[[float], float],
    py: Callable[[float], float],
    color: str,
    dash: str,
    name: str,
) -> str:
    points = " ".join(
        f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, ys, strict=False) if math.isfinite(b)
    )
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"'
        f"{dash_attr}><title>{escape(name)}</title></polyline>"
    )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    width: int = 560,
    row_height: int = 18,
) -> str:
    """Horizontal signed bars around a zero line, one row per label (e.g. θ per feature)."""
    finite = [v for v in values if math.isfinite(v)]
    extent = max((abs(v) for v in finite), default=1.0) or 1.0
    label_w, value_w, top = 170, 70, 28 if title else 8
    bar_w = width - label_w - value_w
    zero = label_w + bar_w / 2
    height = top + row_height * len(labels) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title or "bar chart")}" class="chart">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="14" '
            f'font-family="sans-serif">{escape(title)}</text>'
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_height
        length = (abs(value) / extent) * (bar_w / 2) if math.isfinite(value) else 0.0
        x0 = zero if value >= 0 else zero - length
        color = "#2ca02c" if value >= 0 else "#d62728"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row_height - 5}" text-anchor="end" font-size="11" '
            f'font-family="monospace">{escape(label)}</text>'
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{length:.1f}" height="{row_height - 6}" '
            f'fill="{color}"><title>{escape(label)} = {value:.4g}</title></rect>'
            f'<text x="{width - value_w + 6}" y="{y + row_height - 5}" font-size="11" '
            f'font-family="monospace">{value:+.3f}</text>'
        )
    parts.append(
        f'<line x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{height - 8}" stroke="#555555"/>'
        "</svg>"
    )
    return "".join(parts)
