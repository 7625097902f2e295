#!/usr/bin/env python3
"""Independent reference values for the SDK indicators.

Computes each indicator from its textbook definition, recomputing whole windows
at every step (O(n * period), no incremental state shared with the Rust code),
over a seeded synthetic OHLC series, and writes `indicators.csv` beside this file.

    python3 sdk/tests/reference/make_reference.py

Conventions (the ones the Rust code documents):
- SMA: mean of the last `period` closes.
- EMA: alpha = 2 / (period + 1), seeded with the SMA of the first `period` closes.
- Wilder ATR: TR_0 = high - low; TR_t = max(h - l, |h - c_{t-1}|, |l - c_{t-1}|);
  ATR = mean of the first `period` TRs, then (prev * (period - 1) + TR) / period.
- RSI (Wilder): changes from the second close; averages of gains and losses as in
  the ATR; RSI = 100 - 100 / (1 + avg_gain / avg_loss), 100 when avg_loss = 0.
- Rolling mean / sample stddev (n - 1) / z-score of the latest close over `period`.
"""
import csv
import math
import os
import random
import statistics

N = 400
SMA_P, EMA_P, ATR_P, RSI_P, STATS_P = 20, 10, 14, 14, 30


def series():
    rng = random.Random(20131008)
    price, rows = 100.0, []
    for _ in range(N):
        o = price
        c = max(1.0, o * math.exp(rng.gauss(0.0, 0.02)))
        h = max(o, c) * (1 + abs(rng.gauss(0.0, 0.01)))
        lo = min(o, c) * (1 - abs(rng.gauss(0.0, 0.01)))
        rows.append((round(o, 4), round(h, 4), round(lo, 4), round(c, 4)))
        price = c
    return rows


def sma(closes, t, p):
    return None if t + 1 < p else sum(closes[t + 1 - p : t + 1]) / p


def ema(closes, t, p):
    if t + 1 < p:
        return None
    value = sum(closes[:p]) / p
    alpha = 2.0 / (p + 1)
    for x in closes[p : t + 1]:
        value = alpha * x + (1 - alpha) * value
    return value


def wilder(values, p):
    """Wilder average after the last element of `values`, or None."""
    if len(values) < p:
        return None
    avg = sum(values[:p]) / p
    for x in values[p:]:
        avg = (avg * (p - 1) + x) / p
    return avg


def atr(rows, t, p):
    trs = []
    for i in range(t + 1):
        _, h, lo, _ = rows[i]
        if i == 0:
            trs.append(h - lo)
        else:
            pc = rows[i - 1][3]
            trs.append(max(h - lo, abs(h - pc), abs(lo - pc)))
    return wilder(trs, p)


def rsi(closes, t, p):
    changes = [closes[i] - closes[i - 1] for i in range(1, t + 1)]
    g = wilder([max(c, 0.0) for c in changes], p)
    l = wilder([max(-c, 0.0) for c in changes], p)
    if g is None:
        return None
    return 100.0 if l == 0 else 100.0 - 100.0 / (1.0 + g / l)


def stats(closes, t, p):
    if t + 1 < p:
        return None, None, None
    w = closes[t + 1 - p : t + 1]
    m, sd = statistics.fmean(w), statistics.stdev(w)
    return m, sd, (closes[t] - m) / sd if sd > 0 else None


def fmt(x):
    return "" if x is None else repr(x)


def main():
    rows = series()
    closes = [r[3] for r in rows]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "indicators.csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["open", "high", "low", "close", f"sma{SMA_P}", f"ema{EMA_P}", f"atr{ATR_P}",
                    f"rsi{RSI_P}", f"mean{STATS_P}", f"stddev{STATS_P}", f"zscore{STATS_P}"])
        for t, r in enumerate(rows):
            m, sd, z = stats(closes, t, STATS_P)
            w.writerow([*r, fmt(sma(closes, t, SMA_P)), fmt(ema(closes, t, EMA_P)), fmt(atr(rows, t, ATR_P)),
                        fmt(rsi(closes, t, RSI_P)), fmt(m), fmt(sd), fmt(z)])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
