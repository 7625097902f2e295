"""Stratbox's Python SDK: write a plugin, test it with pytest, build it into a component.

    import stratbox
    from stratbox import Ctx, Init, PluginInfo, Strategy, target

    @stratbox.export
    class Follow(Strategy):
        @staticmethod
        def describe():
            return PluginInfo("follow", "0.1.0").param_number("quantity", "position", 1.0, 0.0, 1e9)

        def __init__(self, ctx: Ctx, init: Init):
            self.quantity = init.params.number("quantity")

        def on_bar(self, ctx, bar):
            return target(bar.instrument, self.quantity if bar.close > bar.open else 0.0)

The same code runs natively under `stratbox.testing.Harness` and, built by
`stratbox plugin build`, in the host's sandbox behind the WIT world
`stratbox:plugin@0.1.1`.
"""

from .context import Ctx, InferenceError, KvError, Model
from .indicators import (Ema, EwmaVariance, LogReturns, PerInstrument, RollingMedian, RollingStats, Rsi, Sma,
                         WilderAtr, median)
from .info import Init, ParamError, Params, ParamSpec, PluginInfo
from .roles import AnomalyDetector, Plugin, StopPolicy, Strategy
from .state import StateError, StateReader, StateWriter
from .types import (NANOS, Alarm, AlarmLevel, Bar, Cancel, CancelAll, Exit, Fill, Instrument, Intent, Limit,
                    LogLevel, Market, ModelInfo, Order, OrderStatus, OrderView, Position, Quote, RunMode, SetLevels,
                    Side, Stop, StopDecision, Target, TimeInForce, cancel, cancel_all, exit_position, limit, market,
                    set_levels, stop, target)

__version__ = "0.1.1"
CONTRACT = "stratbox:plugin@0.1.1"

_exported = []


def export(cls):
    """Marks `cls` as the module's plugin (the Rust SDK's `export_plugin!`); usable as a decorator.

    The roles reported to the host are the role classes `cls` subclasses.
    """
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        raise TypeError(f"stratbox.export takes a Plugin subclass, not {cls!r}")
    if "describe" not in {k for c in cls.__mro__ if c is not Plugin for k in vars(c)}:
        raise TypeError(f"{cls.__name__} must define a static `describe()` returning a PluginInfo")
    _exported.append(cls)
    return cls


def exported():
    """The plugin class `export` marked; exactly one per component."""
    if len(_exported) != 1:
        names = ", ".join(c.__name__ for c in _exported) or "none"
        raise RuntimeError(f"a component exports exactly one plugin class with stratbox.export; found {names}")
    return _exported[0]
