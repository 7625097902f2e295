"""Anomaly detector in Python: market breadth, the Rust `plugins/breadth-guard` rule for rule.

In each cross-section, the share of instruments whose close fell `drop` or
more from their previous close: `severe_breadth` of them or more raises a
severe alarm, `breadth` or more a critical one (the kind that trips a circuit
breaker). It needs at least `min_instruments` returns in the cross-section,
so that three names of a five-stock universe are not "the market".
"""

import math

import stratbox
from stratbox import Alarm, AlarmLevel, AnomalyDetector, Ctx, Init, LogReturns, PluginInfo


@stratbox.export
class BreadthGuard(AnomalyDetector):
    @staticmethod
    def describe():
        return (PluginInfo("breadth-guard-py", "0.1.0")
                .description("Market breadth: the share of instruments falling together in one bar (Python)")
                .param_number("drop", "fall, as a fraction, that counts an instrument as falling", 0.05, 0.001, 1.0)
                .param_number("breadth", "share of instruments falling for a critical alarm", 0.5, 0.0, 1.0)
                .param_number("severe_breadth", "share falling for a severe alarm", 0.3, 0.0, 1.0)
                .param_int("min_instruments", "returns a cross-section needs to count as the market", 10, 1,
                           1_000_000))

    def __init__(self, ctx: Ctx, init: Init):
        p = init.params
        self.breadth, self.severe_breadth = p.number("breadth"), p.number("severe_breadth")
        if self.severe_breadth > self.breadth:
            raise ValueError(f"`severe_breadth` ({self.severe_breadth}) must not be above `breadth` ({self.breadth})")
        self.drop = p.number("drop")
        self.min_instruments = p.int("min_instruments")
        self.returns = LogReturns()

    def observe_bars(self, ctx, bars):
        threshold = math.log(1.0 - self.drop)
        seen = falling = 0
        for bar in bars:
            r = self.returns.update(bar.instrument, bar.close)
            if r is not None:
                seen += 1
                falling += r <= threshold
        if seen < self.min_instruments or falling == 0:
            return None
        share = falling / seen
        if share >= self.breadth:
            level = AlarmLevel.CRITICAL
        elif share >= self.severe_breadth:
            level = AlarmLevel.SEVERE
        else:
            return None
        return Alarm(level, f"{falling} of {seen} instruments fell {self.drop * 100.0:.0f}% or more in one bar")
