"""One base class per plugin role, mirroring the Rust SDK's traits.

A plugin subclasses `Strategy`, `StopPolicy` and/or `AnomalyDetector` (each a
`Plugin`); the roles it reports to the host are the ones it subclasses.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

from .context import Ctx
from .info import Init, PluginInfo
from .types import Alarm, Bar, Fill, Intent, Position, Quote, StopDecision


class Plugin:
    """Self-description, start-up and state hand-over."""

    @staticmethod
    def describe() -> PluginInfo:
        """Name, version, parameters and requested limits. Called at load; keep it pure."""
        raise NotImplementedError("a plugin must define `describe()`")

    def __init__(self, ctx: Ctx, init: Init):
        """Build the plugin from its resolved parameters; raise to refuse it (the message says why)."""

    def export_state(self) -> bytes:
        """State a successor needs on hot swap or restart. Default: none (cold start)."""
        return b""

    def import_state(self, ctx: Ctx, state: bytes) -> None:
        """Take over a predecessor's state, after `__init__`."""


class Strategy(Plugin):
    """Market events in, intents out: each handler returns its intents (a list, one intent or None)."""

    def on_bar(self, ctx: Ctx, bar: Bar) -> Optional[Iterable[Intent]]:
        return None

    def on_bars(self, ctx: Ctx, bars: List[Bar]) -> Optional[Iterable[Intent]]:
        """Many bars closed at once (one per instrument). Default: `on_bar` for each."""
        out: List[Intent] = []
        for bar in bars:
            got = self.on_bar(ctx, bar)
            if got is not None:
                out.extend(_as_list(got))
        return out

    def on_quote(self, ctx: Ctx, quote: Quote) -> Optional[Iterable[Intent]]:
        return None

    def on_fill(self, ctx: Ctx, fill: Fill) -> Optional[Iterable[Intent]]:
        return None

    def on_timer(self, ctx: Ctx, now: int) -> Optional[Iterable[Intent]]:
        return None


class StopPolicy(Plugin):
    """Positions and bars in, stop levels or exits out."""

    def on_position_bar(self, ctx: Ctx, bar: Bar, position: Position) -> Optional[Iterable[StopDecision]]:
        raise NotImplementedError("a stop policy must define `on_position_bar`")


class AnomalyDetector(Plugin):
    """Market events in, alarms out."""

    def observe_bars(self, ctx: Ctx, bars: List[Bar]) -> Optional[Alarm]:
        raise NotImplementedError("an anomaly detector must define `observe_bars`")

    def observe_quote(self, ctx: Ctx, quote: Quote) -> Optional[Alarm]:
        return None


def roles_of(cls) -> List[str]:
    """The roles a plugin class implements, in the WIT flags' order."""
    return [name for name, base in (("strategy", Strategy), ("stop-policy", StopPolicy),
                                    ("anomaly-detector", AnomalyDetector)) if issubclass(cls, base)]


def _as_list(got) -> list:
    if isinstance(got, list):
        return got
    if isinstance(got, (tuple,)) or hasattr(got, "__next__"):
        return list(got)
    return [got]
