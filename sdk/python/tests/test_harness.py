"""The native harness and the SDK's values: what a plugin sees in a test is what the host gives it."""

import pytest

import stratbox
from stratbox import (Alarm, AlarmLevel, AnomalyDetector, Fill, LogLevel, PluginInfo, Side, StateReader, StateWriter,
                      StopPolicy, Strategy, limit, market, set_levels, target)
from stratbox.roles import roles_of
from stratbox.testing import Harness, TestHost, TestModel, bar, instrument


class Echo(Strategy, StopPolicy):
    @staticmethod
    def describe():
        return PluginInfo("echo", "0.1.0").param_text("mode", "what to do", "target").timer_secs(60)

    def __init__(self, ctx, init):
        self.mode = init.params.text("mode")
        self.model = None

    def on_bar(self, ctx, b):
        ctx.info(f"bar at {ctx.now()}")
        ctx.kv_set("last", str(b.close).encode())
        return [target(b.instrument, 1.0), limit(b.instrument, Side.SELL, 1.0, b.close * 1.1)]

    def on_fill(self, ctx, f):
        p = ctx.position(f.instrument)
        return market(f.instrument, Side.SELL, p.quantity) if p and p.quantity > 5 else None

    def on_position_bar(self, ctx, b, position):
        yield set_levels(b.instrument, stop_loss=position.average_price * 0.9)


class Spike(AnomalyDetector):
    @staticmethod
    def describe():
        return PluginInfo("spike", "0.1.0")

    def observe_bars(self, ctx, bars):
        if any(b.close > 2 * b.open for b in bars):
            return Alarm(AlarmLevel.SEVERE, "a close doubled its open")


def test_roles_come_from_the_base_classes():
    assert roles_of(Echo) == ["strategy", "stop-policy"]
    assert roles_of(Spike) == ["anomaly-detector"]


def test_clock_store_history_and_logs():
    h = Harness(Echo, [instrument(0, "AAA")])
    out = h.bar(bar(0, 100, 60, 50.0))
    assert out[0] == target(0, 1.0) and out[1].order_type.price == pytest.approx(55.0)
    assert h.host.now_ns == 160 * stratbox.NANOS
    assert h.host.kv["last"] == b"50.0"
    assert h.host.logs == [(LogLevel.INFO, f"bar at {160 * stratbox.NANOS}")]
    h.bar(bar(0, 160, 60, 51.0))
    assert [b.close for b in h.ctx.history(0, 60, 5)] == [50.0, 51.0]


def test_fills_build_positions_as_the_host_books_them():
    h = Harness(Echo, [instrument(0, "AAA")])
    assert h.fill(Fill(1, 0, 0, Side.BUY, 10.0, 100.0, 1.0)) == [market(0, Side.SELL, 10.0)]
    h.fill(Fill(2, 0, 0, Side.SELL, 15.0, 90.0, 0.0))
    p = h.ctx.position(0)
    assert (p.quantity, p.average_price, p.realised_pnl) == (-5.0, 90.0, -101.0)
    assert h.position_bar(bar(0, 0, 60, 90.0), p) == [set_levels(0, stop_loss=81.0)]


def test_detector_and_models():
    h = Harness(Spike, [])
    assert h.observe([bar(0, 0, 60, 1.0)]) is None
    b = bar(0, 60, 60, 3.0)
    b.open = 1.0
    assert h.observe([b]).level == AlarmLevel.SEVERE
    host = TestHost()
    host.models.append(TestModel("up", 2, ["down", "up"], lambda row: [0.25, 0.75]))
    m = Harness(Spike, [], host=host).ctx.model("up")
    assert m.predict([1.0, 2.0, 3.0, 4.0]) == [0.25, 0.75, 0.25, 0.75]
    with pytest.raises(stratbox.InferenceError, match="wrong-shape"):
        m.predict([1.0])
    with pytest.raises(stratbox.InferenceError, match="not-found"):
        Harness(Spike, []).ctx.model("nope")


def test_state_round_trips_and_short_state_is_refused():
    data = StateWriter().u64(7).u32(3).u8(255).f64(1.5).bytes()
    r = StateReader(data)
    assert (r.u64(), r.u32(), r.u8(), r.f64(), r.is_empty()) == (7, 3, 255, 1.5, True)
    with pytest.raises(stratbox.StateError, match="more bytes expected"):
        StateReader(b"\x01").u32()


def test_export_requires_a_plugin_with_describe():
    with pytest.raises(TypeError):
        stratbox.export(int)

    class NoDescribe(Strategy):
        pass

    with pytest.raises(TypeError, match="describe"):
        stratbox.export(NoDescribe)
