"""Chart geometry: what the SVG template draws."""

import pytest

from common.charts import Chart, Series, lines, nice_step, stacked_bars


@pytest.mark.parametrize(
    ("rough", "step"), [(0, 1), (0.3, 1), (3, 5), (7.5, 10), (12, 20), (2_500, 5_000)]
)
def test_a_step_is_a_round_number(rough, step):
    assert nice_step(rough) == step


def test_bars_stack_each_series_on_the_last_and_fit_the_plot():
    chart = Chart("c", "t", "d", [Series("a", "x", [2, 0, 5]), Series("b", "y", [3, 1, None])])
    stacked_bars(chart, ["1", "2", "3"], ["day 1", "day 2", "day 3"])

    assert [(bar.css, bar.title) for bar in chart.bars] == [
        ("x", "day 1 · a: 2"),
        ("y", "day 1 · b: 3"),
        ("y", "day 2 · b: 1"),
        ("x", "day 3 · a: 5"),
    ]
    first, second = chart.bars[:2]
    assert first.y + first.height == chart.bottom  # on the axis
    assert second.y + second.height == pytest.approx(first.y, abs=0.1)  # on the first
    assert min(bar.y for bar in chart.bars) >= chart.top
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4", "6"]


def test_a_line_breaks_where_a_value_is_missing():
    chart = Chart("c", "t", "d", [Series("p50", "p50", [100, None, 300, 400])])
    lines(chart, list("abcd"), list("abcd"), fmt="{:.0f} ms".format)

    [line] = chart.lines
    assert [part[0] for part in line.path.split(" ") if part[0] in "ML"] == ["M", "M", "L"]
    assert len(chart.dots) == 3
    assert chart.dots[0].title == "a · p50: 100 ms"
    assert chart.has_data


def test_an_empty_chart_draws_nothing_but_its_axis():
    chart = Chart("c", "t", "d", [Series("a", "x", [0, None])])
    stacked_bars(chart, ["1", "2"], ["1", "2"])
    assert not chart.has_data
    assert [tick.label for tick in chart.y_ticks] == ["0", "1"]
