"""Native test harness: run a plugin's logic with plain `pytest`, no wasm.

It resolves parameters the way the host does (declared defaults, overrides
checked for type and range), sets the market clock to each event's time, keeps
bar history, a private key-value store and positions built from the fills you
feed, and records log lines.

    h = Harness(SmaCross, [instrument(0, "SPY")], {"fast": 2, "slow": 4})
    assert h.bar(bar(0, 0, 86_400, 100.0)) == []
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .context import Ctx, InferenceError
from .info import Init, resolve_params
from .roles import _as_list
from .types import (NANOS, Alarm, Bar, Fill, Instrument, Intent, LogLevel, ModelInfo, OrderView, Position,
                    Quote, RunMode, Side, StopDecision)


def instrument(id: int, symbol: str) -> Instrument:
    """An instrument with tick size 0.01 and lot size 1, in USD."""
    return Instrument(id, symbol, 0.01, 1.0, "USD")


def bar(instrument: int, start_secs: int, period_secs: int, close: float, volume: float = 0.0) -> Bar:
    """A flat bar (open = high = low = close) starting at `start_secs`."""
    return Bar(instrument, start_secs * NANOS, period_secs, close, close, close, close, volume)


FLAT_EPSILON = 1e-9  # the host's: smaller remainders are flat


def _signum(x: float) -> float:
    """Rust's f64::signum: the sign bit decides, zero included."""
    return math.copysign(1.0, x)


class TestModel:
    """A model served in place of the host's ONNX engine: `run` maps one row to its probabilities."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, row_width: int, classes: Sequence[str], run: Callable[[List[float]], List[float]],
                 fuel_per_row: int = 1):
        self.name, self.row_width, self.classes, self.run, self.fuel_per_row = name, row_width, list(classes), run, fuel_per_row


class TestHost:
    """In-memory host API used by `Harness`."""

    __test__ = False

    def __init__(self):
        self.now_ns = 0
        self.logs: List[Tuple[LogLevel, str]] = []
        self.kv: Dict[str, bytes] = {}
        self.positions_by_id: Dict[int, Position] = {}
        self.orders: List[OrderView] = []
        self.models: List[TestModel] = []
        self.predicted_rows = 0
        self._history: Dict[Tuple[int, int], List[Bar]] = {}

    def record_bar(self, b: Bar) -> None:
        self._history.setdefault((b.instrument, b.period_secs), []).append(b)

    def apply_fill(self, fill: Fill) -> None:
        """Books a fill as the host's netting ledger does (average price, realised P&L, fees)."""
        signed = fill.quantity if fill.side == Side.BUY else -fill.quantity
        p = self.positions_by_id.setdefault(fill.instrument, Position(fill.instrument, 0.0, 0.0))
        q = p.quantity
        if q == 0.0 or _signum(q) == _signum(signed):
            total = q + signed
            p.average_price = (p.average_price * abs(q) + fill.price * abs(signed)) / abs(total)
            p.quantity = total
        else:
            closed = min(abs(signed), abs(q))
            p.realised_pnl += closed * (fill.price - p.average_price) * _signum(q)
            p.quantity = q + signed
            if abs(p.quantity) < FLAT_EPSILON:
                p.quantity = 0.0
                p.average_price = 0.0
            elif _signum(p.quantity) != _signum(q):
                p.average_price = fill.price
        p.realised_pnl -= fill.fee
        p.unrealised_pnl = p.quantity * (fill.price - p.average_price)

    # The host API.
    def log(self, level: LogLevel, message: str) -> None:
        self.logs.append((level, message))

    def now(self) -> int:
        return self.now_ns

    def kv_get(self, key: str) -> Optional[bytes]:
        return self.kv.get(key)

    def kv_set(self, key: str, value: bytes) -> None:
        self.kv[key] = bytes(value)

    def kv_delete(self, key: str) -> None:
        self.kv.pop(key, None)

    def positions(self) -> List[Position]:
        return [p for p in self.positions_by_id.values() if p.quantity != 0.0]

    def position(self, instrument: int) -> Optional[Position]:
        p = self.positions_by_id.get(instrument)
        return p if p is not None and p.quantity != 0.0 else None

    def open_orders(self) -> List[OrderView]:
        return list(self.orders)

    def history(self, instrument: int, period_secs: int, count: int) -> List[Bar]:
        bars = self._history.get((instrument, period_secs), [])
        return bars[max(0, len(bars) - count):]

    def resolve_model(self, name: str) -> ModelInfo:
        for handle, m in enumerate(self.models):
            if m.name == name:
                return ModelInfo(handle, m.row_width, list(m.classes), m.fuel_per_row)
        raise InferenceError("not-found", f"no model named `{name}`")

    def predict(self, handle: int, rows: Sequence[float]) -> List[float]:
        if not 0 <= handle < len(self.models):
            raise InferenceError("not-granted", f"handle {handle} was not resolved")
        m = self.models[handle]
        if not rows or len(rows) % m.row_width:
            raise InferenceError("wrong-shape", {"features": m.row_width, "values": len(rows)})
        for i, v in enumerate(rows):
            if v != v or v in (float("inf"), float("-inf")):
                raise InferenceError("non-finite", i)
        self.predicted_rows += len(rows) // m.row_width
        out: List[float] = []
        for r in range(0, len(rows), m.row_width):
            out.extend(m.run(list(rows[r:r + m.row_width])))
        return out


class Harness:
    """Drives one plugin natively, in backtest mode."""

    def __init__(self, plugin_cls, instruments: Sequence[Instrument] = (), overrides=(), host: Optional[TestHost] = None):
        self.host = host if host is not None else TestHost()
        self.instruments = list(instruments)
        self.ctx = Ctx(self.host)
        init = Init(RunMode.BACKTEST, list(self.instruments), resolve_params(plugin_cls.describe(), overrides))
        self.plugin = plugin_cls(self.ctx, init)

    def swap(self, successor_cls, overrides=()) -> "Harness":
        """Hands this plugin's state to a new build, as a hot swap does."""
        state = self.plugin.export_state()
        successor = Harness(successor_cls, self.instruments, overrides, self.host)
        successor.plugin.import_state(successor.ctx, bytes(state))
        return successor

    def _close(self, b: Bar) -> None:
        self.host.now_ns = b.start + b.period_secs * NANOS
        self.host.record_bar(b)

    @staticmethod
    def _list(got) -> list:
        return [] if got is None else _as_list(got)

    def bar(self, b: Bar) -> List[Intent]:
        self._close(b)
        return self._list(self.plugin.on_bar(self.ctx, b))

    def bars(self, bars: Sequence[Bar]) -> List[Intent]:
        for b in bars:
            self._close(b)
        return self._list(self.plugin.on_bars(self.ctx, list(bars)))

    def quote(self, q: Quote) -> List[Intent]:
        self.host.now_ns = q.time
        return self._list(self.plugin.on_quote(self.ctx, q))

    def fill(self, f: Fill) -> List[Intent]:
        self.host.now_ns = f.time
        self.host.apply_fill(f)
        return self._list(self.plugin.on_fill(self.ctx, f))

    def timer(self, now: int) -> List[Intent]:
        self.host.now_ns = now
        return self._list(self.plugin.on_timer(self.ctx, now))

    def position_bar(self, b: Bar, position: Position) -> List[StopDecision]:
        self._close(b)
        return self._list(self.plugin.on_position_bar(self.ctx, b, position))

    def observe(self, bars: Sequence[Bar]) -> Optional[Alarm]:
        for b in bars:
            self._close(b)
        return self.plugin.observe_bars(self.ctx, list(bars))

    def observe_quote(self, q: Quote) -> Optional[Alarm]:
        self.host.now_ns = q.time
        return self.plugin.observe_quote(self.ctx, q)
