"""Every SDK indicator over the reference bars, one CSV line per bar, floats in repr (exact).

`sdk/tests/python_parity.rs` runs this and compares each value with the Rust
SDK's on the same input: they must be equal, not merely close.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stratbox.indicators import Ema, EwmaVariance, LogReturns, RollingMedian, RollingStats, Rsi, Sma, WilderAtr  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "reference" / "indicators.csv"


def rows():
    for line in REFERENCE.read_text().splitlines()[1:]:
        cells = line.split(",")
        yield float(cells[1]), float(cells[2]), float(cells[3])


def values():
    sma, ema, atr, rsi, stats = Sma(20), Ema(10), WilderAtr(14), Rsi(14), RollingStats(30)
    ewma, med, rets = EwmaVariance(10.0, 5), RollingMedian(15), LogReturns()
    for high, low, close in rows():
        stats.update(close)
        r = rets.update(0, close)
        v = ewma.update(r) if r is not None else ewma.value()
        med.update(close)
        mm = med.median_mad()
        yield [sma.update(close), ema.update(close), atr.update(high, low, close), rsi.update(close), stats.mean(),
               stats.stddev(), stats.zscore(close), r, v, None if mm is None else mm[0], None if mm is None else mm[1]]


if __name__ == "__main__":
    for vs in values():
        print(",".join("" if x is None else repr(x) for x in vs))
