"""The Rust breadth-guard's unit tests, against the native harness."""

import pytest

from breadth_guard import BreadthGuard
from stratbox import AlarmLevel
from stratbox.testing import Harness, bar, instrument

DAY = 86_400


def day_after(n, falling):
    h = Harness(BreadthGuard, [instrument(i, "X") for i in range(n)])
    assert h.observe([bar(i, 0, DAY, 100.0) for i in range(n)]) is None
    return h.observe([bar(i, DAY, DAY, 94.0 if i < falling else 100.5) for i in range(n)])


def test_levels_follow_the_share_falling():
    critical = day_after(20, 12)
    assert (critical.level, critical.instrument) == (AlarmLevel.CRITICAL, None)
    assert critical.reason == "12 of 20 instruments fell 5% or more in one bar"
    assert day_after(20, 6).level == AlarmLevel.SEVERE
    assert day_after(20, 5) is None


def test_a_small_universe_is_not_the_market():
    assert day_after(5, 5) is None, "five names under min_instruments = 10"


def test_inverted_thresholds_are_refused():
    with pytest.raises(ValueError, match="must not be above"):
        Harness(BreadthGuard, [instrument(0, "X")], {"severe_breadth": 0.6, "breadth": 0.5})
