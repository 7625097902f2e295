"""The Rust sma-cross's unit tests, in Python, against the native harness."""

import pytest

from sma_cross import SmaCross
from stratbox import ParamError, target
from stratbox.testing import Harness, bar, instrument

DAY = 86_400
PATH = [10.0, 9.0, 8.0, 7.0, 6.0, 8.0, 10.0, 12.0, 11.0, 9.0, 7.0, 5.0]
FAST_SLOW = {"fast": 2, "slow": 4}


def run(h, closes, from_day=0):
    out = []
    for i, c in enumerate(closes):
        day = from_day + i
        out += [(day, x) for x in h.bar(bar(0, day * DAY, DAY, c))]
    return out


def test_goes_long_on_the_up_cross_and_flat_on_the_down_cross():
    h = Harness(SmaCross, [instrument(0, "AAA"), instrument(1, "BBB")], FAST_SLOW)
    assert run(h, PATH) == [(6, target(0, 10.0)), (9, target(0, 0.0))]


def test_goes_short_when_allowed():
    h = Harness(SmaCross, [instrument(0, "AAA")], {**FAST_SLOW, "allow_short": True})
    assert [x for _, x in run(h, PATH)] == [target(0, -10.0), target(0, 10.0), target(0, -10.0)]


def test_instruments_are_independent():
    h = Harness(SmaCross, [instrument(0, "AAA"), instrument(1, "BBB")], FAST_SLOW)
    for i, c in enumerate(PATH):
        out = h.bars([bar(0, i * DAY, DAY, c), bar(1, i * DAY, DAY, 100.0)])
        assert all(x.instrument == 0 for x in out)


def test_rejects_fast_not_shorter_than_slow_and_out_of_range_params():
    with pytest.raises(ValueError, match="must be shorter"):
        Harness(SmaCross, [], {"fast": 30})
    with pytest.raises(ParamError, match="outside"):
        Harness(SmaCross, [], {"slow": 1})
    with pytest.raises(ParamError, match="unknown parameter `speed`"):
        Harness(SmaCross, [], {"speed": 1})
    with pytest.raises(ParamError, match="not of the declared type"):
        Harness(SmaCross, [], {"fast": 2.5})


def test_a_swapped_successor_continues_exactly_where_the_predecessor_stopped():
    expected = run(Harness(SmaCross, [instrument(0, "AAA")], FAST_SLOW), PATH)
    first = Harness(SmaCross, [instrument(0, "AAA")], FAST_SLOW)
    got = run(first, PATH[:5])
    second = first.swap(SmaCross, FAST_SLOW)
    got += run(second, PATH[5:], 5)
    assert got == expected
    assert any("took over 1 instruments" in m for _, m in second.host.logs)
