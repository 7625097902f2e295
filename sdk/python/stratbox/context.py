"""What a plugin can ask of its host, through `Ctx`: exactly the WIT world's imports.

In a component the calls cross into the host; under `stratbox.testing.Harness`
they are served in memory. There is no other way out: `print`, the wall clock,
files and sockets are not available to a plugin (see `stratbox._guest`).
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence

from .types import Bar, LogLevel, ModelInfo, OrderView, Position


class KvError(Exception):
    """A key-value write was refused: `kind` is quota-exceeded, key-too-long or unavailable."""

    def __init__(self, kind: str, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class InferenceError(Exception):
    """A model call was refused: `kind` is not-found, not-granted, wrong-shape, non-finite,
    budget-exceeded or backend."""

    def __init__(self, kind: str, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class HostApi(Protocol):
    def log(self, level: LogLevel, message: str) -> None: ...
    def now(self) -> int: ...
    def kv_get(self, key: str) -> Optional[bytes]: ...
    def kv_set(self, key: str, value: bytes) -> None: ...
    def kv_delete(self, key: str) -> None: ...
    def positions(self) -> List[Position]: ...
    def position(self, instrument: int) -> Optional[Position]: ...
    def open_orders(self) -> List[OrderView]: ...
    def history(self, instrument: int, period_secs: int, count: int) -> List[Bar]: ...
    def resolve_model(self, name: str) -> ModelInfo: ...
    def predict(self, handle: int, rows: Sequence[float]) -> List[float]: ...


class Model:
    """A model the operator granted this plugin; resolve once (at init), predict on the hot path."""

    def __init__(self, ctx: "Ctx", info: ModelInfo):
        self._ctx = ctx
        self.info = info

    def predict(self, rows: Sequence[float]) -> List[float]:
        """Class probabilities of whole rows (row-major, `info.features` values each)."""
        return self._ctx._host.predict(self.info.handle, rows)


class Ctx:
    """Handle on the host, passed to every callback."""

    __slots__ = ("_host",)

    def __init__(self, host: HostApi):
        self._host = host

    def now(self) -> int:
        """Time of the event being processed, in ns since the Unix epoch (market clock)."""
        return self._host.now()

    def log(self, level: LogLevel, message: str) -> None:
        self._host.log(level, str(message))

    def debug(self, message: str) -> None:
        self._host.log(LogLevel.DEBUG, str(message))

    def info(self, message: str) -> None:
        self._host.log(LogLevel.INFO, str(message))

    def warn(self, message: str) -> None:
        self._host.log(LogLevel.WARN, str(message))

    def error(self, message: str) -> None:
        self._host.log(LogLevel.ERROR, str(message))

    def kv_get(self, key: str) -> Optional[bytes]:
        return self._host.kv_get(key)

    def kv_set(self, key: str, value: bytes) -> None:
        """Raises `KvError` past the quota."""
        self._host.kv_set(key, bytes(value))

    def kv_delete(self, key: str) -> None:
        self._host.kv_delete(key)

    def positions(self) -> List[Position]:
        return self._host.positions()

    def position(self, instrument: int) -> Optional[Position]:
        return self._host.position(instrument)

    def open_orders(self) -> List[OrderView]:
        return self._host.open_orders()

    def history(self, instrument: int, period_secs: int, count: int) -> List[Bar]:
        """Up to `count` most recent closed bars, oldest first."""
        return self._host.history(instrument, period_secs, count)

    def model(self, name: str) -> Model:
        """Raises `InferenceError` when the model is not loaded or not granted."""
        return Model(self, self._host.resolve_model(name))
