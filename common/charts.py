"""Charts drawn by the server as inline SVG: the geometry here, the markup in
templates/admin/dashboard/chart.html, the colours in the dashboard's CSS.

No JavaScript and nothing fetched from elsewhere, so the admin works offline. Every mark
has a title (a tooltip, and what a screen reader reads out), and every chart a title and
a description. Coordinates are in the SVG's own units (the chart's width × height); the
chart scales to its box, so a chart drawn narrow keeps its text readable there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# The plot area's margins inside the chart: room for the value axis on the left, days below.
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 10, 24
# Every how many days the axis is labelled (counted back from the last).
LABEL_EVERY = 5

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    label: str
    css: str  # the class that colours it
    values: Sequence[float | None]  # one per category; None: nothing to show


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    css: str
    title: str


@dataclass(frozen=True)
class Line:
    path: str  # SVG path data; a gap where a value is missing
    css: str


@dataclass(frozen=True)
class Tick:
    at: float  # y for the value axis, x for the category axis
    label: str


@dataclass
class Chart:
    key: str  # unique on the page: the SVG's title and description ids
    title: str
    description: str
    legend: Sequence[Series]
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    width: int = 720
    height: int = 220
    left: int = LEFT
    top: int = TOP

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def has_data(self) -> bool:
        return bool(self.bars or self.dots)

    def band(self, categories: int) -> float:
        """The width given to each category."""
        return (self.right - self.left) / max(categories, 1)

    def y(self, value: float, top: float) -> float:
        """The height on the chart of `value` on an axis running from 0 to `top`."""
        return self.bottom - value / top * (self.bottom - self.top)


def stacked_bars(
    chart: Chart, labels: Sequence[str], names: Sequence[str], fmt: Format = "{:,.0f}".format
) -> Chart:
    """Fill `chart` with one column per category, its legend's series stacked bottom up.

    `labels` are the axis's short category labels, `names` the full ones for titles.
    """
    totals = [sum(s.values[n] or 0 for s in chart.legend) for n in range(len(labels))]
    top = _value_axis(chart, max(totals, default=0), fmt)
    band = chart.band(len(labels))
    for n, name in enumerate(names):
        stacked = 0.0
        for series in chart.legend:
            value = series.values[n] or 0
            if not value:
                continue
            y, base = chart.y(stacked + value, top), chart.y(stacked, top)
            stacked += value
            x = chart.left + n * band + band * 0.15
            title = f"{name} · {series.label}: {fmt(value)}"
            chart.bars.append(Bar(_r(x), _r(y), _r(band * 0.7), _r(base - y), series.css, title))
    chart.x_ticks = _category_axis(chart, labels)
    return chart


def lines(
    chart: Chart, labels: Sequence[str], names: Sequence[str], fmt: Format = "{:,.0f}".format
) -> Chart:
    """Fill `chart` with one line per series of its legend, a dot on each known value."""
    known = [v for s in chart.legend for v in s.values if v is not None]
    top = _value_axis(chart, max(known, default=0), fmt)
    band = chart.band(len(labels))
    for series in chart.legend:
        path = []
        for n, value in enumerate(series.values):
            if value is None:
                continue
            x = _r(chart.left + (n + 0.5) * band)
            y = _r(chart.y(value, top))
            joined = n > 0 and series.values[n - 1] is not None
            path.append(f"{'L' if joined else 'M'}{x} {y}")
            title = f"{names[n]} · {series.label}: {fmt(value)}"
            chart.dots.append(Dot(x, y, series.css, title))
        if path:
            chart.lines.append(Line(" ".join(path), series.css))
    chart.x_ticks = _category_axis(chart, labels)
    return chart


def _value_axis(chart: Chart, maximum: float, fmt: Format) -> float:
    """Set the chart's value ticks (four steps of a round size) and return the axis's top."""
    step = nice_step(maximum / 4)
    top = step * max(math.ceil(maximum / step), 1)
    ticks = range(round(top / step) + 1)
    chart.y_ticks = [Tick(_r(chart.y(k * step, top)), fmt(k * step)) for k in ticks]
    return top


def nice_step(rough: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ (at least 1) that is not below `rough`."""
    if rough <= 1:
        return 1
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _category_axis(chart: Chart, labels: Sequence[str]) -> list[Tick]:
    band, last = chart.band(len(labels)), len(labels) - 1
    return [
        Tick(_r(chart.left + (n + 0.5) * band), label)
        for n, label in enumerate(labels)
        if (last - n) % LABEL_EVERY == 0
    ]


def _r(value: float) -> float:
    return round(value, 1)
