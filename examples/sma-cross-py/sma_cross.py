"""Moving-average crossover in Python, the Rust `examples/sma-cross` line for line.

Per instrument: when the fast SMA crosses above the slow SMA, target a long
position of `quantity`; when it crosses below, target flat (or short, with
`allow_short`). On the same bars it gives exactly the Rust plugin's intents.
"""

from collections import deque

import stratbox
from stratbox import Ctx, Init, PerInstrument, PluginInfo, Sma, StateReader, StateWriter, Strategy, target


class Leg:
    __slots__ = ("fast", "slow", "closes", "signal")

    def __init__(self, fast: int, slow: int):
        self.fast = Sma(fast)
        self.slow = Sma(slow)
        self.closes = deque(maxlen=slow)  # enough to rebuild both SMAs on a hot swap
        self.signal = 0


@stratbox.export
class SmaCross(Strategy):
    @staticmethod
    def describe():
        return (PluginInfo("sma-cross-py", "0.1.0")
                .description("Fast/slow simple moving-average crossover, one position per instrument (Python)")
                .param_int("fast", "fast SMA length, in bars", 10, 1, 1_000)
                .param_int("slow", "slow SMA length, in bars", 30, 2, 5_000)
                .param_number("quantity", "position size when in the market", 10.0, 0.0, 1e9)
                .param_flag("allow_short", "go short on a downward cross instead of flat", False)
                .max_intents_per_callback(4_096))

    def __init__(self, ctx: Ctx, init: Init):
        self.fast = init.params.int("fast")
        self.slow = init.params.int("slow")
        if self.fast >= self.slow:
            raise ValueError(f"`fast` ({self.fast}) must be shorter than `slow` ({self.slow})")
        self.quantity = init.params.number("quantity")
        self.allow_short = init.params.flag("allow_short")
        self.legs = PerInstrument()
        self.crossings = 0
        ctx.info(f"sma-cross-py {self.fast}/{self.slow} on {len(init.instruments)} instruments")

    def _update(self, instrument: int, close: float):
        """Feeds a close; returns the new signal when it changes."""
        leg = self.legs.get_or_insert_with(instrument, lambda: Leg(self.fast, self.slow))
        leg.closes.append(close)
        f, s = leg.fast.update(close), leg.slow.update(close)
        if f is None or s is None:
            return None
        signal = 1 if f > s else ((-1 if self.allow_short else 0) if f < s else leg.signal)
        if signal == leg.signal:
            return None
        leg.signal = signal
        return signal

    def on_bar(self, ctx, bar):
        signal = self._update(bar.instrument, bar.close)
        if signal is not None:
            self.crossings += 1
            return target(bar.instrument, float(signal) * self.quantity)

    def on_bars(self, ctx, bars):
        out = []
        for bar in bars:
            signal = self._update(bar.instrument, bar.close)
            if signal is not None:
                self.crossings += 1
                out.append(target(bar.instrument, float(signal) * self.quantity))
        return out

    # The Rust plugin's layout: u64 crossings, then per leg u32 id, i8 signal, u32 n, n x f64 closes.
    def export_state(self) -> bytes:
        w = StateWriter().u64(self.crossings)
        for i, leg in self.legs.items():
            w.u32(i).u8(leg.signal & 0xFF).u32(len(leg.closes))
            for c in leg.closes:
                w.f64(c)
        return w.bytes()

    def import_state(self, ctx, state: bytes):
        r = StateReader(state)
        self.crossings = r.u64()
        legs = 0
        while not r.is_empty():
            i = r.u32()
            signal = r.u8()
            signal = signal - 256 if signal > 127 else signal
            for _ in range(r.u32()):
                self._update(i, r.f64())
            self.legs.get_or_insert_with(i, lambda: Leg(self.fast, self.slow)).signal = signal
            legs += 1
        ctx.info(f"took over {legs} instruments and {self.crossings} crossings")
