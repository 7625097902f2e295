"""Streaming indicators, the Rust SDK's (`sdk/src/indicators.rs`) operation for operation.

Each `update` returns None until warmed up, then the value. The arithmetic is
done in the same order as the Rust code, so both give the same floats
(`sdk/tests/python_parity.rs` checks it). Sums are plain loops on purpose:
CPython 3.12+'s `sum()` of floats is compensated and would round differently.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Generic, Iterator, List, Optional, Tuple, TypeVar


def _plain_sum(values) -> float:
    s = 0.0
    for v in values:
        s += v
    return s


class _Window:
    """Fixed-capacity ring of the last `period` values."""

    __slots__ = ("period", "values", "next", "full")

    def __init__(self, period: int):
        if period < 1:
            raise ValueError("indicator period must be at least 1")
        self.period = period
        self.values: List[float] = []
        self.next = 0
        self.full = False

    def push(self, x: float) -> Optional[float]:
        if not self.full:
            self.values.append(x)
            self.full = len(self.values) == self.period
            return None
        old = self.values[self.next]
        self.values[self.next] = x
        self.next += 1
        if self.next == self.period:
            self.next = 0
        return old

    def wrapped(self) -> bool:
        return self.full and self.next == 0


class Sma:
    """Simple moving average of the last `period` values."""

    __slots__ = ("_w", "_sum")

    def __init__(self, period: int):
        self._w = _Window(period)
        self._sum = 0.0

    def update(self, x: float) -> Optional[float]:
        self._sum += x
        old = self._w.push(x)
        if old is not None:
            self._sum -= old
        if self._w.wrapped():
            # Cancel the rounding that add/subtract pairs accumulate.
            self._sum = _plain_sum(self._w.values)
        return self.value()

    def value(self) -> Optional[float]:
        return self._sum / len(self._w.values) if self._w.full else None


class Ema:
    """EMA with alpha = 2 / (period + 1), seeded with the SMA of the first `period` values."""

    __slots__ = ("period", "alpha", "seen", "_value")

    def __init__(self, period: int):
        if period < 1:
            raise ValueError("indicator period must be at least 1")
        self.period = period
        self.alpha = 2.0 / (float(period) + 1.0)
        self.seen = 0
        self._value = 0.0

    def update(self, x: float) -> Optional[float]:
        self.seen += 1
        if self.seen < self.period:
            self._value += x
            return None
        if self.seen == self.period:
            self._value = (self._value + x) / float(self.period)
        else:
            self._value += self.alpha * (x - self._value)
        return self._value


class _WilderAverage:
    __slots__ = ("period", "seen", "value")

    def __init__(self, period: int):
        if period < 1:
            raise ValueError("indicator period must be at least 1")
        self.period = period
        self.seen = 0
        self.value = 0.0

    def update(self, x: float) -> Optional[float]:
        self.seen += 1
        n = float(self.period)
        if self.seen < self.period:
            self.value += x
            return None
        if self.seen == self.period:
            self.value = (self.value + x) / n
        else:
            self.value = (self.value * (n - 1.0) + x) / n
        return self.value


class WilderAtr:
    """Wilder's Average True Range; the first bar's true range is high - low."""

    __slots__ = ("_avg", "_prev_close")

    def __init__(self, period: int):
        self._avg = _WilderAverage(period)
        self._prev_close: Optional[float] = None

    def update(self, high: float, low: float, close: float) -> Optional[float]:
        rng = high - low
        pc = self._prev_close
        true_range = rng if pc is None else max(max(rng, abs(high - pc)), abs(low - pc))
        self._prev_close = close
        return self._avg.update(true_range)


class Rsi:
    """Wilder's RSI, 0 to 100; needs period + 1 prices; 100 when there were no losses."""

    __slots__ = ("_gains", "_losses", "_prev")

    def __init__(self, period: int):
        self._gains = _WilderAverage(period)
        self._losses = _WilderAverage(period)
        self._prev: Optional[float] = None

    def update(self, price: float) -> Optional[float]:
        prev, self._prev = self._prev, price
        if prev is None:
            return None
        change = price - prev
        gain = self._gains.update(max(change, 0.0))
        loss = self._losses.update(max(-change, 0.0))
        if gain is None or loss is None:
            return None
        return 100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss)


class RollingStats:
    """Rolling mean, sample standard deviation (n - 1) and z-score, by a sliding Welford step."""

    __slots__ = ("_w", "_mean", "_m2")

    def __init__(self, period: int):
        if period < 2:
            raise ValueError("rolling statistics need a period of at least 2")
        self._w = _Window(period)
        self._mean = 0.0
        self._m2 = 0.0

    def update(self, x: float) -> None:
        old = self._w.push(x)
        n = float(len(self._w.values))
        if old is None:
            delta = x - self._mean
            self._mean += delta / n
            self._m2 += delta * (x - self._mean)
        else:
            old_mean = self._mean
            self._mean += (x - old) / n
            self._m2 += (x - old) * (x - self._mean + old - old_mean)
            self._m2 = max(self._m2, 0.0)
        if self._w.wrapped():
            w = self._w.values
            self._mean = _plain_sum(w) / float(len(w))
            m2 = 0.0
            for v in w:
                d = v - self._mean
                m2 += d * d
            self._m2 = m2

    def is_ready(self) -> bool:
        return self._w.full

    def mean(self) -> Optional[float]:
        return self._mean if self._w.full else None

    def stddev(self) -> Optional[float]:
        return math.sqrt(self._m2 / float(len(self._w.values) - 1)) if self._w.full else None

    def zscore(self, x: float) -> Optional[float]:
        sd = self.stddev()
        if sd is None or not sd > 0.0:
            return None
        return (x - self._mean) / sd


class EwmaVariance:
    """Exponentially weighted variance of returns about zero (RiskMetrics), lambda from a half-life."""

    __slots__ = ("lam", "warmup", "seen", "_value")

    def __init__(self, half_life: float, warmup: int):
        if not half_life > 0.0:
            raise ValueError("a half-life must be positive")
        self.lam = math.pow(0.5, 1.0 / half_life)
        self.warmup = max(warmup, 1)
        self.seen = 0
        self._value = 0.0

    def update(self, r: float) -> Optional[float]:
        self._value = r * r if self.seen == 0 else self.lam * self._value + (1.0 - self.lam) * r * r
        self.seen += 1
        return self.value()

    def value(self) -> Optional[float]:
        return self._value if self.seen >= self.warmup else None


def median(values: List[float]) -> float:
    """Median of `values` (sorted in place); NaN when empty."""
    values.sort()
    n = len(values)
    if n == 0:
        return math.nan
    if n % 2 == 1:
        return values[n // 2]
    return 0.5 * (values[n // 2 - 1] + values[n // 2])


class RollingMedian:
    """Median and median absolute deviation of the last `period` values."""

    __slots__ = ("_w",)

    def __init__(self, period: int):
        self._w = _Window(period)

    def update(self, x: float) -> None:
        self._w.push(x)

    def is_ready(self) -> bool:
        return self._w.full

    def median_mad(self) -> Optional[Tuple[float, float]]:
        if not self._w.full:
            return None
        scratch = list(self._w.values)
        mid = median(scratch)
        return mid, median([abs(v - mid) for v in scratch])


class LogReturns:
    """Log return of each instrument's close against its last good close."""

    __slots__ = ("_last",)

    def __init__(self):
        self._last: Dict[int, float] = {}

    def update(self, instrument: int, close: float) -> Optional[float]:
        if not close > 0.0:
            return None
        prev = self._last.get(instrument)
        self._last[instrument] = close
        return math.log(close / prev) if prev is not None and prev > 0.0 else None


T = TypeVar("T")


class PerInstrument(Generic[T]):
    """State per instrument id (ids are small and dense)."""

    __slots__ = ("_slots",)

    def __init__(self):
        self._slots: List[Optional[T]] = []

    def get_or_insert_with(self, instrument: int, make: Callable[[], T]) -> T:
        if len(self._slots) <= instrument:
            self._slots.extend([None] * (instrument + 1 - len(self._slots)))
        v = self._slots[instrument]
        if v is None:
            v = self._slots[instrument] = make()
        return v

    def get(self, instrument: int) -> Optional[T]:
        return self._slots[instrument] if instrument < len(self._slots) else None

    def set(self, instrument: int, value: T) -> None:
        self.get_or_insert_with(instrument, lambda: value)
        self._slots[instrument] = value

    def items(self) -> Iterator[Tuple[int, T]]:
        return ((i, v) for i, v in enumerate(self._slots) if v is not None)
