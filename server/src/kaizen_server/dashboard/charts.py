"""SVG charts rendered on the server: sparklines, line charts, bar charts and histograms.

The charts are small inline SVG documents built from numbers, so pages need no JavaScript
library and no external asset. Colours come from CSS classes (`chart-line`, `chart-bar`,
...), which the light and dark themes set. Every text that reaches the SVG goes through
`escape`, so a task name can never inject markup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from markupsafe import Markup, escape

Point = tuple[datetime, float | None]


def _scale(value: float, low: float, high: float, size: float) -> float:
    if high <= low:
        return size / 2

    return (value - low) / (high - low) * size


def _segments(coordinates: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Split a coordinate list at its gaps (None), so a line is not drawn across missing data."""
    segments: list[list[tuple[float, float]]] = [[]]
    for coordinate in coordinates:
        if coordinate is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(coordinate)

    return [segment for segment in segments if segment]


def _polyline(segment: list[tuple[float, float]], css_class: str) -> str:
    if len(segment) == 1:
        x, y = segment[0]
        return f'<circle class="{css_class}-dot" cx="{x:.1f}" cy="{y:.1f}" r="1.8"/>'

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
    return f'<polyline class="{css_class}" fill="none" points="{points}"/>'


def sparkline(values: Sequence[float | None], *, label: str, width: int = 120, height: int = 28, low: float = 0.0, high: float = 1.0) -> Markup:
    """Draw `values` (None for gaps) as a small line between `low` and `high`."""
    pad = 2
    known = [value for value in values if value is not None]
    if not known:
        return Markup(
            f'<svg class="sparkline no-data" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}: no scores"><line class="chart-axis" x1="0" x2="{width}" y1="{height - pad}" y2="{height - pad}"/></svg>'
        )

    step = (width - 2 * pad) / max(1, len(values) - 1)
    coordinates = [
        None if value is None else (pad + index * step, height - pad - _scale(value, low, high, height - 2 * pad))
        for index, value in enumerate(values)
    ]
    body = "".join(_polyline(segment, "spark-line") for segment in _segments(coordinates))
    summary = f"{label}: latest {known[-1]:.2f}, from {min(known):.2f} to {max(known):.2f}"
    return Markup(
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>{body}</svg>'
    )


def _frame(width: int, height: int, left: int, bottom: int, top_label: str, bottom_label: str, first: str, last: str, title: str) -> str:
    return (
        f'<title>{escape(title)}</title>'
        f'<line class="chart-axis" x1="{left}" x2="{width}" y1="{height - bottom}" y2="{height - bottom}"/>'
        f'<text class="chart-label" x="{left - 4}" y="10" text-anchor="end">{escape(top_label)}</text>'
        f'<text class="chart-label" x="{left - 4}" y="{height - bottom}" text-anchor="end">{escape(bottom_label)}</text>'
        f'<text class="chart-label" x="{left}" y="{height - 2}">{escape(first)}</text>'
        f'<text class="chart-label" x="{width}" y="{height - 2}" text-anchor="end">{escape(last)}</text>'
    )


def _time_label(moment: datetime, hourly: bool) -> str:
    return moment.strftime("%m-%d %H:00" if hourly else "%Y-%m-%d")


def line_chart(
    series: dict[str, Sequence[Point]], *, title: str, unit: str = "", low: float | None = None, high: float | None = None,
    hourly: bool = False, width: int = 460, height: int = 150, digits: int = 0,
) -> Markup:
    """Draw one line per named series over time; a legend names the series in order."""
    left, bottom, top = 48, 16, 6
    moments = sorted({moment for points in series.values() for moment, _ in points})
    values = [value for points in series.values() for _, value in points if value is not None]
    if not moments or not values:
        return Markup(f'<p class="muted chart-empty">{escape(title)}: no data in this window.</p>')

    low = min(values) if low is None else low
    high = max(values) if high is None else high
    if high == low:
        high = low + 1
    start, end = moments[0], moments[-1]
    span = (end - start).total_seconds() or 1.0
    plot_width, plot_height = width - left - 4, height - bottom - top
    body = []
    for index, (name, points) in enumerate(series.items()):
        coordinates = []
        for moment, value in sorted(points, key=lambda point: point[0]):
            if value is None:
                coordinates.append(None)
                continue
            x = left + ((moment - start).total_seconds() / span * plot_width if len(moments) > 1 else plot_width / 2)
            y = top + plot_height - _scale(value, low, high, plot_height)
            coordinates.append((x, y))
        body.extend(_polyline(segment, f"chart-line series-{index}") for segment in _segments(coordinates))

    legend = "".join(
        f'<text class="chart-legend series-{index}" x="{left + 6 + index * 110}" y="{top + 10}">{escape(name)}</text>'
        for index, name in enumerate(series) if len(series) > 1
    )
    frame = _frame(width, height, left, bottom, f"{high:,.{digits}f}{unit}", f"{low:,.{digits}f}{unit}",
                   _time_label(start, hourly), _time_label(end, hourly), title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">{frame}{"".join(body)}{legend}</svg>'
    )


def bar_chart(points: Sequence[Point], *, title: str, hourly: bool = False, width: int = 460, height: int = 150) -> Markup:
    """Draw one bar per point over time (counts)."""
    left, bottom, top = 48, 16, 6
    known = [(moment, value or 0.0) for moment, value in sorted(points, key=lambda point: point[0])]
    if not known:
        return Markup(f'<p class="muted chart-empty">{escape(title)}: no data in this window.</p>')

    high = max(value for _, value in known) or 1.0
    plot_width, plot_height = width - left - 4, height - bottom - top
    bar = plot_width / len(known)
    body = []
    for index, (moment, value) in enumerate(known):
        bar_height = _scale(value, 0.0, high, plot_height)
        body.append(
            f'<rect class="chart-bar" x="{left + index * bar + bar * 0.1:.1f}" y="{top + plot_height - bar_height:.1f}" '
            f'width="{max(bar * 0.8, 0.5):.1f}" height="{bar_height:.1f}"><title>{escape(_time_label(moment, hourly))}: {value:,.0f}</title></rect>'
        )

    frame = _frame(width, height, left, bottom, f"{high:,.0f}", "0", _time_label(known[0][0], hourly), _time_label(known[-1][0], hourly), title)
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">{frame}{"".join(body)}</svg>')


def histogram(bins: Sequence[int], *, title: str, width: int = 460, height: int = 150) -> Markup:
    """Draw score bins of width 1/len(bins) over [0, 1]."""
    left, bottom, top = 48, 16, 6
    if not any(bins):
        return Markup(f'<p class="muted chart-empty">{escape(title)}: no scored traces in this window.</p>')

    high = max(bins)
    plot_width, plot_height = width - left - 4, height - bottom - top
    bar = plot_width / len(bins)
    body = []
    for index, count in enumerate(bins):
        bar_height = _scale(count, 0.0, high, plot_height)
        low_edge, high_edge = index / len(bins), (index + 1) / len(bins)
        body.append(
            f'<rect class="chart-bar score-bar" x="{left + index * bar + 1:.1f}" y="{top + plot_height - bar_height:.1f}" '
            f'width="{bar - 2:.1f}" height="{bar_height:.1f}"><title>{low_edge:.1f}–{high_edge:.1f}: {count:,}</title></rect>'
        )

    frame = _frame(width, height, left, bottom, f"{high:,}", "0", "0.0", "1.0", title)
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">{frame}{"".join(body)}</svg>')
