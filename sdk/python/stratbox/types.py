"""The contract's values as plain Python objects.

They mirror the WIT world's records (`wit/stratbox.wit`) field for field, so a
plugin reads the same names in a native test as in the component. The glue in
`stratbox._guest` converts to and from the generated bindings at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Union

NANOS = 1_000_000_000


class Side(Enum):
    BUY = 0
    SELL = 1


class TimeInForce(Enum):
    GTC = 0
    DAY = 1
    IOC = 2


class RunMode(Enum):
    BACKTEST = 0
    PAPER = 1
    LIVE = 2


class LogLevel(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class AlarmLevel(Enum):
    NORMAL = 0
    ELEVATED = 1
    SEVERE = 2
    CRITICAL = 3


class OrderStatus(Enum):
    PENDING = 0
    WORKING = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5
    EXPIRED = 6


@dataclass(frozen=True)
class Instrument:
    id: int
    symbol: str
    tick_size: float = 0.01
    lot_size: float = 1.0
    currency: str = "USD"


class Bar:
    """A closed OHLCV bar; `start` in ns on the market clock, delivered at `start + period_secs`."""

    __slots__ = ("instrument", "start", "period_secs", "open", "high", "low", "close", "volume")

    def __init__(self, instrument: int, start: int, period_secs: int, open: float, high: float,
                 low: float, close: float, volume: float = 0.0):
        self.instrument = instrument
        self.start = start
        self.period_secs = period_secs
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    @property
    def end(self) -> int:
        """When the bar closed, in ns."""
        return self.start + self.period_secs * NANOS

    def __eq__(self, other):
        return isinstance(other, Bar) and all(getattr(self, k) == getattr(other, k) for k in Bar.__slots__)

    def __repr__(self):
        return (f"Bar(instrument={self.instrument}, start={self.start}, period_secs={self.period_secs}, "
                f"open={self.open}, high={self.high}, low={self.low}, close={self.close}, volume={self.volume})")


@dataclass(frozen=True)
class Quote:
    instrument: int
    time: int
    bid: float
    bid_size: float
    ask: float
    ask_size: float


@dataclass(frozen=True)
class Fill:
    order_id: int
    instrument: int
    time: int
    side: Side
    quantity: float
    price: float
    fee: float = 0.0


@dataclass
class Position:
    instrument: int
    quantity: float
    average_price: float
    realised_pnl: float = 0.0
    unrealised_pnl: float = 0.0


# Order types: market, limit at a price, stop at a trigger.
@dataclass(frozen=True)
class Market:
    pass


@dataclass(frozen=True)
class Limit:
    price: float


@dataclass(frozen=True)
class Stop:
    trigger: float


OrderType = Union[Market, Limit, Stop]


@dataclass(frozen=True)
class OrderView:
    id: int
    instrument: int
    side: Side
    quantity: float
    filled_quantity: float
    order_type: OrderType
    status: OrderStatus
    tag: int = 0


# Intents: everything a strategy asks for. The host validates each one and its
# risk engine decides; nothing bypasses it.
@dataclass(frozen=True)
class Order:
    instrument: int
    side: Side
    quantity: float
    order_type: OrderType = Market()
    time_in_force: TimeInForce = TimeInForce.GTC
    tag: int = 0


@dataclass(frozen=True)
class Target:
    """"Make my position this" (signed); the host sends the difference."""
    instrument: int
    quantity: float


@dataclass(frozen=True)
class Cancel:
    order_id: int


@dataclass(frozen=True)
class CancelAll:
    instrument: Optional[int] = None


Intent = Union[Order, Target, Cancel, CancelAll]


def target(instrument: int, quantity: float) -> Target:
    return Target(instrument, float(quantity))


def market(instrument: int, side: Side, quantity: float, tag: int = 0) -> Order:
    return Order(instrument, side, float(quantity), Market(), TimeInForce.GTC, tag)


def limit(instrument: int, side: Side, quantity: float, price: float,
          time_in_force: TimeInForce = TimeInForce.GTC, tag: int = 0) -> Order:
    return Order(instrument, side, float(quantity), Limit(float(price)), time_in_force, tag)


def stop(instrument: int, side: Side, quantity: float, trigger: float,
         time_in_force: TimeInForce = TimeInForce.GTC, tag: int = 0) -> Order:
    return Order(instrument, side, float(quantity), Stop(float(trigger)), time_in_force, tag)


def cancel(order_id: int) -> Cancel:
    return Cancel(order_id)


def cancel_all(instrument: Optional[int] = None) -> CancelAll:
    return CancelAll(instrument)


# Stop-policy decisions.
@dataclass(frozen=True)
class SetLevels:
    instrument: int
    stop_loss: Optional[float] = None
    take_profit: Optional[float] = None


@dataclass(frozen=True)
class Exit:
    instrument: int


StopDecision = Union[SetLevels, Exit]


def set_levels(instrument: int, stop_loss: Optional[float] = None, take_profit: Optional[float] = None) -> SetLevels:
    return SetLevels(instrument, stop_loss, take_profit)


def exit_position(instrument: int) -> Exit:
    return Exit(instrument)


@dataclass(frozen=True)
class Alarm:
    level: AlarmLevel
    reason: str
    instrument: Optional[int] = None


@dataclass(frozen=True)
class ModelInfo:
    handle: int
    features: int
    classes: List[str] = field(default_factory=list)
    fuel_per_row: int = 1
