"""The research bench's baseline: backtrader 1.9.78 running sma-cross
(long `quantity` while the fast SMA is above the slow one, flat otherwise,
as the bundled plugin with its defaults does) on every symbol of a daily CSV
(`symbol,date,open,high,low,close,volume` or `date,...,Name`, plain or gzipped), market orders
filled at the next bar's open.

    python3 backtrader_sma.py FILE [--fast 10] [--slow 30] [--quantity 10]

Prints one JSON line: bars, symbols, load and run seconds, bars per second
of the run, orders filled. Only the standard library and backtrader.
"""

import argparse
import csv
import datetime as dt
import gzip
import json
import time

import backtrader as bt


class Rows(bt.feeds.DataBase):
    """One symbol's bars from memory (no pandas)."""

    def __init__(self, rows):
        super().__init__()
        self._rows = rows
        self._i = 0

    def start(self):
        super().start()
        self._i = 0

    def _load(self):
        if self._i >= len(self._rows):
            return False
        d, o, h, l, c, v = self._rows[self._i]
        self._i += 1
        self.lines.datetime[0] = bt.date2num(d)
        self.lines.open[0], self.lines.high[0], self.lines.low[0], self.lines.close[0] = o, h, l, c
        self.lines.volume[0] = v
        self.lines.openinterest[0] = 0.0
        return True


class SmaCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30), ("quantity", 10.0))

    def __init__(self):
        self.fills = 0
        self.cross = {d: bt.ind.CrossOver(bt.ind.SMA(d.close, period=self.p.fast), bt.ind.SMA(d.close, period=self.p.slow)) for d in self.datas}

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills += 1

    def next(self):
        for d, x in self.cross.items():
            if len(d) and x[0] > 0:
                self.order_target_size(d, self.p.quantity)
            elif len(d) and x[0] < 0:
                self.order_target_size(d, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--quantity", type=float, default=10.0)
    a = ap.parse_args()
    started = time.perf_counter()
    opener = gzip.open if a.file.endswith(".gz") else open
    by_symbol = {}
    with opener(a.file, "rt", newline="") as f:
        for r in csv.DictReader(f):
            try:
                row = (dt.datetime.strptime(r["date"], "%Y-%m-%d"), float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]), float(r["volume"] or 0))
            except (ValueError, KeyError):
                continue  # what the importer would reject
            by_symbol.setdefault(r.get("symbol") or r["Name"], []).append(row)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(1e7)
    bars = 0
    for sym in sorted(by_symbol):
        rows = sorted(by_symbol[sym])
        bars += len(rows)
        cerebro.adddata(Rows(rows), name=sym)
    cerebro.addstrategy(SmaCross, fast=a.fast, slow=a.slow, quantity=a.quantity)
    loaded = time.perf_counter()
    strat = cerebro.run()[0]
    done = time.perf_counter()
    print(json.dumps({"bars": bars, "symbols": len(by_symbol), "load_secs": loaded - started, "run_secs": done - loaded, "bars_per_sec": bars / (done - loaded), "fills": strat.fills}))


if __name__ == "__main__":
    main()
