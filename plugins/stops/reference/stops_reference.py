#!/usr/bin/env python3
"""Independent reference for the `stops` plugin: every rule of its README,
and the paper broker's fill rules, over real daily bars.

Standard library only. For each rule set below and each symbol, it replays
the bars of QuantConnect Lean's daily files with the entry rule of the test
strategy `tests/plugins/periodic-entry` (after `wait` bars closed flat, a
market order for a long, then short, then long... position, filled at the
next bar's open) and writes every trade as JSON:

    python3 plugins/stops/reference/stops_reference.py ../shared/data trades.json

The test `tests/research/stops.rs` runs it and requires the plugin's trades,
through the host's research runner, to be these.

The broker is the paper broker with no spread, slippage, commission or
latency: a market order placed at a bar's close fills at the open of the
first bar starting at or after that close; protective levels set at a bar's
close are checked from the next bar on, after orders: a long's stop when the
low reaches it, at min(open, stop); its take-profit when the high reaches
it, at max(open, take-profit); the stop first when a bar reaches both.
Timestamps are the files' dates at 00:00 UTC (the test imports them so).
"""
import csv
import datetime
import json
import os
import sys

WAIT = 5
DAY = 86_400
HOUR = 3_600
# The series replayed: (folder under lean/, symbols, bar length in seconds).
SERIES = {
    "daily": ("equity_usa_daily", ["spy", "aig", "bac"], DAY),
    "hourly": ("equity_usa_hour", ["spy"], HOUR),
}

# Every rule set the test runs: the plugin's parameters beyond the defaults
# below (which are the plugin's own defaults).
DEFAULTS = {
    "atr_period": 14, "atr_trail": 3.0, "chandelier": 0.0, "chandelier_period": 22,
    "trail_pct": 0.0, "max_bars": 0, "max_secs": 0, "session_close_utc": "", "close_buffer_mins": 0,
    "breakeven_atr": 0.0, "breakeven_r": 0.0, "lock_fraction": 0.0, "take_profit_atr": 0.0, "take_profit_pct": 0.0,
}
RULE_SETS = {
    "atr-trail": {},
    "chandelier": {"atr_trail": 0.0, "chandelier": 3.0},
    "percent-trail": {"atr_trail": 0.0, "trail_pct": 8.0},
    "max-bars": {"atr_trail": 0.0, "max_bars": 10},
    "max-secs": {"atr_trail": 0.0, "max_secs": 15 * DAY},
    "breakeven-lock": {"atr_trail": 4.0, "breakeven_atr": 1.0, "lock_fraction": 0.5},
    "breakeven-r": {"atr_trail": 0.0, "trail_pct": 5.0, "breakeven_r": 1.0},
    "take-profit": {"atr_trail": 3.0, "take_profit_atr": 3.0, "take_profit_pct": 5.0},
    # Hourly bars, whose file times are read as UTC (the test imports them so):
    # out before the 16:00 close, on the bar ending in the last hour.
    "session-close": {"atr_trail": 3.0, "session_close_utc": "16:00", "close_buffer_mins": 60},
}
SERIES_OF = {"session-close": "hourly"}


class WilderAtr:
    """TR_0 = high - low, then max(h - l, |h - c_prev|, |l - c_prev|); the
    mean of the first `period` TRs, then (avg * (period - 1) + TR) / period."""

    def __init__(self, period):
        self.period, self.seen, self.value, self.prev_close = period, 0, 0.0, None

    def update(self, high, low, close):
        rng = high - low
        tr = rng if self.prev_close is None else max(rng, abs(high - self.prev_close), abs(low - self.prev_close))
        self.prev_close = close
        self.seen += 1
        n = float(self.period)
        if self.seen < self.period:
            self.value += tr
            return None
        if self.seen == self.period:
            self.value = (self.value + tr) / n
        else:
            self.value = (self.value * (n - 1.0) + tr) / n
        return self.value


def tighter(d, a, b):
    return max(a, b) if d > 0 else min(a, b)


class Trade:
    """The rules applied to one trade, bar by bar (the README's definitions)."""

    def __init__(self, r, d, entry, start, warmup, period):
        self.r, self.d, self.entry, self.opened, self.period = r, d, entry, start, period
        self.bars, self.entry_atr, self.best_close, self.peak = 0, None, None, None
        self.recent, self.stop, self.initial_risk, self.protecting, self.take_profit = [], None, None, False, None
        self.atr = WilderAtr(r["atr_period"])
        for b in warmup:
            self.atr.update(b["high"], b["low"], b["close"])

    def on_bar(self, b):
        r, d = self.r, self.d
        self.bars += 1
        atr = self.atr.update(b["high"], b["low"], b["close"])
        if self.entry_atr is None:
            self.entry_atr = atr
        fav = b["high"] if d > 0 else b["low"]
        if self.best_close is None:
            self.best_close, self.peak = b["close"], fav
        else:
            self.best_close, self.peak = tighter(d, self.best_close, b["close"]), tighter(d, self.peak, fav)
        self.recent = (self.recent + [fav])[-r["chandelier_period"]:]
        end = b["start"] + self.period
        if r["max_bars"] > 0 and self.bars >= r["max_bars"]:
            return "exit"
        if r["max_secs"] > 0 and end - self.opened >= r["max_secs"]:
            return "exit"
        if r["session_close_utc"]:
            hh, mm = r["session_close_utc"].split(":")
            close, minute = int(hh) * 60 + int(mm), (end % DAY) // 60
            if close - r["close_buffer_mins"] <= minute <= close:
                return "exit"
        levels = []
        if atr is not None:
            if r["atr_trail"] > 0:
                levels.append(self.best_close - d * r["atr_trail"] * atr)
            if r["chandelier"] > 0:
                ext = max(self.recent) if d > 0 else min(self.recent)
                levels.append(ext - d * r["chandelier"] * atr)
        if r["trail_pct"] > 0:
            levels.append(self.peak * (1.0 - d * r["trail_pct"] / 100.0))
        gain = d * (self.best_close - self.entry)
        if not self.protecting:
            by_atr = r["breakeven_atr"] > 0 and self.entry_atr is not None and gain >= r["breakeven_atr"] * self.entry_atr
            by_r = r["breakeven_r"] > 0 and self.initial_risk is not None and gain >= r["breakeven_r"] * self.initial_risk
            self.protecting = by_atr or by_r
        if self.protecting:
            levels.append(self.entry + d * r["lock_fraction"] * max(gain, 0.0))
        levels = [x for x in levels if x > 0]  # a level at or below zero never triggers
        if self.stop is not None:
            levels.append(self.stop)
        stop = None
        for x in levels:
            stop = x if stop is None else tighter(d, stop, x)
        if self.initial_risk is None and stop is not None and d * (self.entry - stop) > 0:
            self.initial_risk = d * (self.entry - stop)
        self.stop = stop
        if self.take_profit is None:
            cands = []
            if r["take_profit_atr"] > 0 and self.entry_atr is not None:
                cands.append(self.entry + d * r["take_profit_atr"] * self.entry_atr)
            if r["take_profit_pct"] > 0:
                cands.append(self.entry * (1.0 + d * r["take_profit_pct"] / 100.0))
            cands = [x for x in cands if x > 0]
            if cands:
                self.take_profit = min(cands, key=lambda x: d * (x - self.entry))
        if stop is not None and d * (b["close"] - stop) <= 0:
            return "exit"
        return "levels"


def replay(bars, r, period):
    trades = []
    position, trade, pending, levels = 0, None, None, None  # pending: (kind, direction, placed_at)
    flat, direction = 0, 1

    def close(b, price, how):
        nonlocal position, trade, levels
        trades.append({"direction": position, "opened": trade["opened"], "entry": trade["entry"],
                       "closed": b["start"], "exit": price, "how": how})
        position, trade, levels = 0, None, None

    for k, b in enumerate(bars):
        # The broker: orders first, then protective levels.
        if pending is not None and b["start"] >= pending[2]:
            kind, d, _ = pending
            pending = None
            if kind == "entry":
                position = d
                trade = {"opened": b["start"], "entry": b["open"], "rules": Trade(r, d, b["open"], b["start"], bars[max(0, k - r["atr_period"]):k], period)}
                levels = None
            elif position != 0:
                close(b, b["open"], "exit")
        if position != 0 and levels is not None:
            stop, tp = levels
            d = position
            if stop is not None and (b["low"] <= stop if d > 0 else b["high"] >= stop):
                close(b, min(b["open"], stop) if d > 0 else max(b["open"], stop), "stop")
            elif tp is not None and (b["high"] >= tp if d > 0 else b["low"] <= tp):
                close(b, max(b["open"], tp) if d > 0 else min(b["open"], tp), "take-profit")
        # The stop policy.
        if position != 0:
            rules = trade["rules"]
            if rules.on_bar(b) == "exit":
                pending = ("exit", 0, b["start"] + period)
            else:
                levels = (rules.stop, rules.take_profit)
        # The strategy.
        if position != 0:
            flat = 0
        else:
            flat += 1
            if flat >= WAIT:
                pending = ("entry", direction, b["start"] + period)
                flat, direction = 0, -direction
    if trade is not None:
        trades.append({"direction": position, "opened": trade["opened"], "entry": trade["entry"], "closed": None, "exit": None, "how": "open"})
    return trades


def read_bars(path):
    bars = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            day = datetime.datetime.strptime(row["datetime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
            bars.append({"start": int(day.timestamp()), **{k: float(row[k]) for k in ("open", "high", "low", "close")}})
    bars.sort(key=lambda b: b["start"])
    return bars


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: stops_reference.py DATA_DIR OUT.json")
    data, path = sys.argv[1], sys.argv[2]
    out = {"wait": WAIT, "series": {}, "rule_sets": {}}
    bars = {}
    for series, (folder, symbols, period) in SERIES.items():
        bars[series] = {s.upper(): read_bars(os.path.join(data, "lean", folder, s + ".csv")) for s in symbols}
        out["series"][series] = {"folder": folder, "period": period, "symbols": {s: len(b) for s, b in bars[series].items()}}
    for name, overrides in RULE_SETS.items():
        r = dict(DEFAULTS, **overrides)
        series = SERIES_OF.get(name, "daily")
        period = SERIES[series][2]
        out["rule_sets"][name] = {"series": series, "params": overrides, "trades": {s: replay(b, r, period) for s, b in bars[series].items()}}
    with open(path, "w") as f:
        json.dump(out, f)
    n = sum(len(t) for rs in out["rule_sets"].values() for t in rs["trades"].values())
    print(f"{path}: {len(RULE_SETS)} rule sets, {n} trades")


if __name__ == "__main__":
    main()
