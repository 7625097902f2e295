"""What a plugin says about itself (`PluginInfo`) and what it starts with (`Init`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .types import Instrument, RunMode

ParamValue = Union[bool, int, float, str]

# A Python plugin runs CPython inside the component: a bar costs on the order
# of ten thousand fuel units where a Rust plugin spends hundreds, and the
# interpreter's heap starts at about 12 MB. These defaults fit a strategy over
# a few thousand instruments; the host still clamps them to its maxima.
DEFAULT_FUEL_PER_CALLBACK = 2_000_000_000
DEFAULT_MEMORY_BYTES = 128 << 20


class ParamError(ValueError):
    """A parameter is missing, of another type or out of its range."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    description: str
    default: ParamValue
    min: Optional[float] = None
    max: Optional[float] = None

    @property
    def kind(self) -> str:
        return _kind(self.default)


def _kind(value: ParamValue) -> str:
    # bool first: it is an int subclass in Python.
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    raise ParamError(f"a parameter value must be bool, int, float or str, not {type(value).__name__}")


class PluginInfo:
    """Builder for the descriptor, with the Rust SDK's method names."""

    def __init__(self, name: str, version: str):
        self.name = name
        self.version = version
        self.text = ""
        self.params: List[ParamSpec] = []
        self.memory = DEFAULT_MEMORY_BYTES
        self.fuel = DEFAULT_FUEL_PER_CALLBACK
        self.max_intents = 0
        self.timer = 0

    def description(self, text: str) -> "PluginInfo":
        self.text = text
        return self

    def _param(self, spec: ParamSpec) -> "PluginInfo":
        if any(p.name == spec.name for p in self.params):
            raise ParamError(f"parameter `{spec.name}` is declared twice")
        self.params.append(spec)
        return self

    def param_int(self, name: str, description: str, default: int, min: int, max: int) -> "PluginInfo":
        return self._param(ParamSpec(name, description, int(default), float(min), float(max)))

    def param_number(self, name: str, description: str, default: float, min: float, max: float) -> "PluginInfo":
        return self._param(ParamSpec(name, description, float(default), float(min), float(max)))

    def param_flag(self, name: str, description: str, default: bool) -> "PluginInfo":
        return self._param(ParamSpec(name, description, bool(default)))

    def param_text(self, name: str, description: str, default: str) -> "PluginInfo":
        return self._param(ParamSpec(name, description, str(default)))

    def memory_bytes(self, n: int) -> "PluginInfo":
        self.memory = int(n)
        return self

    def fuel_per_callback(self, n: int) -> "PluginInfo":
        self.fuel = int(n)
        return self

    def max_intents_per_callback(self, n: int) -> "PluginInfo":
        self.max_intents = int(n)
        return self

    def timer_secs(self, secs: int) -> "PluginInfo":
        self.timer = int(secs)
        return self


class Params:
    """Resolved parameters: every declared one, with the operator's value or its default."""

    def __init__(self, values: Dict[str, ParamValue]):
        self._values = dict(values)

    def get(self, name: str) -> Optional[ParamValue]:
        return self._values.get(name)

    def _typed(self, name: str, want: str, ok) -> ParamValue:
        v = self._values.get(name)
        if v is None or not ok(v):
            raise ParamError(f"parameter `{name}`: expected {want}, but it is missing or of another type")
        return v

    def int(self, name: str) -> int:
        return self._typed(name, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))

    def number(self, name: str) -> float:
        """A number; an integer is accepted and widened."""
        return float(self._typed(name, "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)))

    def flag(self, name: str) -> bool:
        return self._typed(name, "a flag", lambda v: isinstance(v, bool))

    def text(self, name: str) -> str:
        return self._typed(name, "text", lambda v: isinstance(v, str))

    def items(self):
        return self._values.items()


@dataclass
class Init:
    mode: RunMode
    instruments: List[Instrument]
    params: Params


def resolve_params(info: PluginInfo, overrides: Sequence[Tuple[str, ParamValue]] | Dict[str, ParamValue] = ()) -> Params:
    """Declared defaults with `overrides`, checked for type and range as the host checks them."""
    pairs = list(overrides.items()) if isinstance(overrides, dict) else list(overrides)
    declared = {p.name: p for p in info.params}
    for name, _ in pairs:
        if name not in declared:
            raise ParamError(f"unknown parameter `{name}`")
    given = dict(pairs)
    resolved: Dict[str, ParamValue] = {}
    for spec in info.params:
        value = given.get(spec.name, spec.default)
        if _kind(value) != spec.kind:
            raise ParamError(f"parameter `{spec.name}`: value {value!r} is not of the declared type ({spec.kind})")
        if spec.kind in ("integer", "number"):
            x = float(value)
            if math.isnan(x) or (spec.min is not None and x < spec.min) or (spec.max is not None and x > spec.max):
                raise ParamError(f"parameter `{spec.name}` = {value} is outside [{spec.min}, {spec.max}]")
        resolved[spec.name] = value
    return Params(resolved)
