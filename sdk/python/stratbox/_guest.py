"""Glue between componentize-py's generated bindings (`wit_world`) and the SDK's roles.

Only a component build imports this module (through the entry module that
`stratbox plugin build` writes); native tests never need `wit_world`.

What it guarantees inside the sandbox, where the component has no WASI at all:
- An exception escaping user code is logged at error level as
  `exception in <callback>: <traceback>` and then traps the instance; the host
  turns that into a named fault with the traceback as its reason. In `init`
  and `import_state` the traceback is the refusal's message instead.
- What would reach outside is refused by name before it can trap anonymously:
  `open`, the wall clock (`time.time` and friends), sockets, and importing a
  module for the first time inside a handler. `print` goes to the host's log.
"""

import builtins
import io
import os
import sys
import time
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import clock as _clock
from wit_world.imports import inference as _inference
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import market as _market
from wit_world.imports import orders as _orders
from wit_world.imports import portfolio as _portfolio
from wit_world.imports import types as wt

from . import types as t
from .context import Ctx, InferenceError, KvError
from .info import Init, Params
from .roles import AnomalyDetector as _AnomalyDetectorRole
from .roles import StopPolicy as _StopPolicyRole
from .roles import Strategy as _StrategyRole
from .roles import _as_list


class SandboxError(RuntimeError):
    """Something a plugin may not do in the sandbox; the message says what to use instead."""


# --- the host's imports, in the SDK's types ------------------------------------------------

def _bar(b) -> t.Bar:
    return t.Bar(b.instrument, b.start, b.period_secs, b.open, b.high, b.low, b.close, b.volume)


def _position(p) -> t.Position:
    return t.Position(p.instrument, p.quantity, p.average_price, p.realised_pnl, p.unrealised_pnl)


def _order_type_in(o) -> t.OrderType:
    if isinstance(o, wt.OrderType_Limit):
        return t.Limit(o.value)
    if isinstance(o, wt.OrderType_Stop):
        return t.Stop(o.value)
    return t.Market()


_KV_KINDS = {"KvError_QuotaExceeded": "quota-exceeded", "KvError_KeyTooLong": "key-too-long",
             "KvError_Unavailable": "unavailable"}
_INFERENCE_KINDS = {"InferenceError_NotFound": "not-found", "InferenceError_NotGranted": "not-granted",
                    "InferenceError_WrongShape": "wrong-shape", "InferenceError_NonFinite": "non-finite",
                    "InferenceError_BudgetExceeded": "budget-exceeded", "InferenceError_Backend": "backend"}


def _kv_error(e: Err) -> KvError:
    return KvError(_KV_KINDS.get(type(e.value).__name__, "unavailable"), getattr(e.value, "value", None))


def _inference_error(e: Err) -> InferenceError:
    v = e.value
    detail = getattr(v, "value", None)
    if hasattr(detail, "__dataclass_fields__"):
        detail = {k: getattr(detail, k) for k in detail.__dataclass_fields__}
    return InferenceError(_INFERENCE_KINDS.get(type(v).__name__, "backend"), detail)


_LEVELS = [wt.LogLevel.TRACE, wt.LogLevel.DEBUG, wt.LogLevel.INFO, wt.LogLevel.WARN, wt.LogLevel.ERROR]


class WasmHost:
    """The host API over the component's imports."""

    def log(self, level, message):
        _log.log(_LEVELS[level.value], message)

    def now(self):
        return _clock.now()

    def kv_get(self, key):
        return _kv.get(key)

    def kv_set(self, key, value):
        try:
            _kv.set(key, value)
        except Err as e:
            raise _kv_error(e) from None

    def kv_delete(self, key):
        try:
            _kv.delete(key)
        except Err as e:
            raise _kv_error(e) from None

    def positions(self):
        return [_position(p) for p in _portfolio.positions()]

    def position(self, instrument):
        p = _portfolio.position_of(instrument)
        return None if p is None else _position(p)

    def open_orders(self):
        return [t.OrderView(o.id, o.instrument, t.Side(o.side.value), o.quantity, o.filled_quantity,
                            _order_type_in(o.order_type), t.OrderStatus(o.status.value), o.tag)
                for o in _portfolio.open_orders()]

    def history(self, instrument, period_secs, count):
        return [_bar(b) for b in _market.history(instrument, period_secs, count)]

    def resolve_model(self, name):
        try:
            m = _inference.resolve(name)
        except Err as e:
            raise _inference_error(e) from None
        return t.ModelInfo(m.handle, m.features, list(m.classes), m.fuel_per_row)

    def predict(self, handle, rows):
        try:
            return _inference.predict(handle, [float(x) for x in rows])
        except Err as e:
            raise _inference_error(e) from None


# --- the SDK's values, as the contract's ---------------------------------------------------

_SIDES = [wt.Side.BUY, wt.Side.SELL]
_TIFS = [wt.TimeInForce.GTC, wt.TimeInForce.DAY, wt.TimeInForce.IOC]
_ALARMS = [wt.AlarmLevel.NORMAL, wt.AlarmLevel.ELEVATED, wt.AlarmLevel.SEVERE, wt.AlarmLevel.CRITICAL]


def _intent(x):
    cls = type(x)
    if cls is t.Target:
        return wt.Intent_Target(wt.TargetPosition(x.instrument, float(x.quantity)))
    if cls is t.Order:
        o = x.order_type
        if type(o) is t.Limit:
            kind = wt.OrderType_Limit(float(o.price))
        elif type(o) is t.Stop:
            kind = wt.OrderType_Stop(float(o.trigger))
        else:
            kind = wt.OrderType_Market()
        return wt.Intent_Order(wt.OrderIntent(x.instrument, _SIDES[x.side.value], float(x.quantity), kind,
                                              _TIFS[x.time_in_force.value], x.tag))
    if cls is t.Cancel:
        return wt.Intent_Cancel(x.order_id)
    if cls is t.CancelAll:
        return wt.Intent_CancelAll(x.instrument)
    raise TypeError(f"a handler returned {x!r} ({cls.__name__}), not an intent: "
                    "build one with stratbox.target, market, limit, stop, cancel or cancel_all")


def _decision(x):
    if type(x) is t.SetLevels:
        return wt.StopDecision_SetLevels(wt.StopLevels(x.instrument, x.stop_loss, x.take_profit))
    if type(x) is t.Exit:
        return wt.StopDecision_Exit(x.instrument)
    raise TypeError(f"a stop policy returned {x!r}, not a decision: use stratbox.set_levels or exit_position")


def _alarm(a):
    if a is None:
        return None
    if type(a) is not t.Alarm:
        raise TypeError(f"an anomaly detector returned {a!r}, not a stratbox.Alarm or None")
    return wt.Alarm(_ALARMS[a.level.value], a.instrument, str(a.reason))


def _param_value(v):
    if isinstance(v, bool):
        return wt.ParamValue_Flag(v)
    if isinstance(v, int):
        return wt.ParamValue_Integer(v)
    if isinstance(v, float):
        return wt.ParamValue_Number(v)
    return wt.ParamValue_Text(str(v))


def _param_in(v):
    return v.value


# --- guards ----------------------------------------------------------------------------------

class _Guard:
    """Whether user code is running (imports of new modules are refused then)."""
    active = False


def _refuse(what, instead):
    def refused(*args, **kwargs):
        raise SandboxError(f"{what} is not available in a Stratbox plugin: {instead}")
    refused.__name__ = what
    return refused


_real_import = builtins.__import__


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if _Guard.active and level == 0 and name not in sys.modules:
        raise ImportError(f"module `{name}` imported for the first time inside a handler: import it at the "
                          "top of the plugin's module (the component's Python is initialised at build time)",
                          name=name)
    return _real_import(name, globals, locals, fromlist, level)


def _print(*args, sep=" ", end="\n", file=None, flush=False):
    _log.log(wt.LogLevel.INFO, sep.join(str(a) for a in args))


def _install_guards():
    no_files = "a plugin has no files; keep state with ctx.kv_set or export_state"
    builtins.open = io.open = _refuse("open()", no_files)
    os.open = _refuse("os.open()", no_files)
    clock = "the wall clock would make a replay differ; use ctx.now(), the market clock"
    for name in ("time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns",
                 "process_time", "process_time_ns", "sleep"):
        if hasattr(time, name):
            setattr(time, name, _refuse(f"time.{name}()", clock))
    try:
        import socket
    except ImportError:
        socket = None
    if socket is not None:
        no_network = "a plugin has no network; the host owns every connection"
        for name in ("socket", "create_connection", "create_server", "getaddrinfo", "socketpair"):
            if hasattr(socket, name):
                setattr(socket, name, _refuse(f"socket.{name}()", no_network))
    builtins.print = _print
    builtins.__import__ = _guarded_import


# --- faults ------------------------------------------------------------------------------------

MAX_TRACEBACK = 1000  # the host keeps 1 KiB of a fault's reason; the end matters most

# Source lines of the plugin's own modules, read at build time (when files
# exist). At run time `traceback`'s own formatting would stat and open source
# files through linecache, which traps under --stub-wasi before anything is
# logged, so the traceback is formatted here from frames and this dict alone.
_SOURCES: dict = {}


def _remember_sources(cls):
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return
    home = os.path.dirname(os.path.abspath(path))
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if f and f.endswith(".py") and os.path.dirname(os.path.abspath(f)).startswith(home):
            try:
                with open(f, encoding="utf-8") as src:
                    _SOURCES[f] = src.read().splitlines()
            except (OSError, UnicodeDecodeError):
                pass


def _frame_lines(tb) -> list:
    out, last, repeats = [], None, 0

    def flush():
        if repeats > 3:
            out.append(f"  [Previous line repeated {repeats - 3} more times]")

    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        if code.co_filename == __file__:
            continue  # the SDK's glue, not the plugin's code
        key = (code.co_filename, lineno, code.co_name)
        if key == last:
            repeats += 1
            if repeats > 3:
                continue
        else:
            flush()
            last, repeats = key, 1
        out.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}')
        source = _SOURCES.get(code.co_filename)
        if source and 0 < lineno <= len(source) and source[lineno - 1].strip():
            out.append("    " + source[lineno - 1].strip())
    flush()
    return out


def _exception_line(e: BaseException) -> str:
    kind = type(e)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    try:
        message = str(e)
    except BaseException:
        message = "<the exception's str() raised>"
    return f"{name}: {message}" if message else name


def _describe_exception(e: BaseException) -> str:
    """The traceback as CPython prints it (chained causes first), with no I/O."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen and len(chain) < 4:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    parts = []
    for i, x in enumerate(reversed(chain)):
        if i:
            parts.append("\nThe above exception was the direct cause of the following exception:\n"
                         if chain[len(chain) - i - 1].__cause__ is not None else
                         "\nDuring handling of the above exception, another exception occurred:\n")
        parts.append("Traceback (most recent call last):")
        parts.extend(_frame_lines(x.__traceback__))
        parts.append(_exception_line(x))
    text = "\n".join(parts)
    if len(text) > MAX_TRACEBACK:
        # Keep the end: the innermost frame and the message matter most.
        text = "..." + text[-MAX_TRACEBACK:]
    return text


def _fault(callback: str, e: BaseException):
    _Guard.active = False
    _log.log(wt.LogLevel.ERROR, f"exception in {callback}: {_describe_exception(e)}")


# --- the exports -------------------------------------------------------------------------------

_HOST = WasmHost()
_CTX = Ctx(_HOST)


class _Slot:
    """The one plugin object of this instance (module state persists across calls)."""
    cls = None
    plugin = None


def _roles(cls):
    roles = wt.Roles(0)
    if issubclass(cls, _StrategyRole):
        roles |= wt.Roles.STRATEGY
    if issubclass(cls, _StopPolicyRole):
        roles |= wt.Roles.STOP_POLICY
    if issubclass(cls, _AnomalyDetectorRole):
        roles |= wt.Roles.ANOMALY_DETECTOR
    return roles


def _submit(got):
    if got is None:
        return
    for x in _as_list(got):
        _orders.submit(_intent(x))


def _call(callback, f, *args):
    """Runs user code: the import guard on, exceptions logged as the fault's reason, then re-raised (a trap)."""
    _Guard.active = True
    try:
        out = f(_CTX, *args)
    except BaseException as e:
        _fault(callback, e)
        raise
    _Guard.active = False
    return out


def _call_or_refuse(f, *args):
    """Runs user code whose contract result can say no (`init`, `import_state`):
    an exception becomes that refusal, with its traceback, instead of a trap."""
    _Guard.active = True
    try:
        f(_CTX, *args)
    except BaseException as e:
        _Guard.active = False
        raise Err(_describe_exception(e))
    _Guard.active = False


class Lifecycle(exports.Lifecycle):
    def describe(self):
        cls = _Slot.cls
        try:
            info = cls.describe()
        except BaseException as e:
            _fault("describe", e)
            raise
        params = [wt.ParamSpec(p.name, p.description, _param_value(p.default), p.min, p.max) for p in info.params]
        return wt.Descriptor(info.name, info.version, info.text, _roles(cls), params,
                             wt.ResourceRequest(info.memory, info.fuel, info.max_intents), info.timer)

    def init(self, context):
        init = Init(t.RunMode(context.mode.value),
                    [t.Instrument(i.id, i.symbol, i.tick_size, i.lot_size, i.currency) for i in context.instruments],
                    Params({p.name: _param_in(p.value) for p in context.params}))
        def construct(ctx):
            _Slot.plugin = _Slot.cls(ctx, init)
        _call_or_refuse(construct)

    def export_state(self):
        return bytes(_call("export-state", lambda ctx: _Slot.plugin.export_state()))

    def import_state(self, state):
        _call_or_refuse(_Slot.plugin.import_state, bytes(state))


class Strategy(exports.Strategy):
    def on_bar(self, bar):
        _submit(_call("on-bar", _Slot.plugin.on_bar, _bar(bar)))

    def on_bars(self, bars):
        batch = [t.Bar(*row) for row in zip(bars.instruments, bars.starts, bars.period_secs, bars.open,
                                            bars.high, bars.low, bars.close, bars.volume)]
        _submit(_call("on-bars", _Slot.plugin.on_bars, batch))

    def on_quote(self, q):
        quote = t.Quote(q.instrument, q.time, q.bid, q.bid_size, q.ask, q.ask_size)
        _submit(_call("on-quote", _Slot.plugin.on_quote, quote))

    def on_fill(self, f):
        fill = t.Fill(f.order_id, f.instrument, f.time, t.Side(f.side.value), f.quantity, f.price, f.fee)
        _submit(_call("on-fill", _Slot.plugin.on_fill, fill))

    def on_timer(self, now):
        _submit(_call("on-timer", _Slot.plugin.on_timer, now))


class StopPolicy(exports.StopPolicy):
    def on_bar(self, bar, position):
        got = _call("stop-policy.on-bar", _Slot.plugin.on_position_bar, _bar(bar), _position(position))
        return [] if got is None else [_decision(x) for x in _as_list(got)]


class AnomalyDetector(exports.AnomalyDetector):
    def observe_bars(self, bars):
        batch = [t.Bar(*row) for row in zip(bars.instruments, bars.starts, bars.period_secs, bars.open,
                                            bars.high, bars.low, bars.close, bars.volume)]
        return _alarm(_call("observe-bars", _Slot.plugin.observe_bars, batch))

    def observe_quote(self, q):
        quote = t.Quote(q.instrument, q.time, q.bid, q.bid_size, q.ask, q.ask_size)
        return _alarm(_call("observe-quote", _Slot.plugin.observe_quote, quote))


def bind(cls):
    """Makes `cls` this component's plugin; returns the four export classes for the entry module."""
    _Slot.cls = cls
    _remember_sources(cls)
    _install_guards()
    strategy = Strategy if issubclass(cls, _StrategyRole) else _IdleStrategy
    stop = StopPolicy if issubclass(cls, _StopPolicyRole) else _IdleStopPolicy
    detector = AnomalyDetector if issubclass(cls, _AnomalyDetectorRole) else _IdleAnomalyDetector
    return Lifecycle, strategy, stop, detector


# Roles a plugin does not implement answer with nothing, as in the Rust SDK.
class _IdleStrategy(exports.Strategy):
    def on_bar(self, bar): pass
    def on_bars(self, bars): pass
    def on_quote(self, quote): pass
    def on_fill(self, fill): pass
    def on_timer(self, now): pass


class _IdleStopPolicy(exports.StopPolicy):
    def on_bar(self, bar, position): return []


class _IdleAnomalyDetector(exports.AnomalyDetector):
    def observe_bars(self, bars): return None
    def observe_quote(self, quote): return None
