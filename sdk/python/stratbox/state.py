"""Little-endian state for hot swap and restarts, the layout the Rust SDK's `StateReader` reads."""

from __future__ import annotations

import struct


class StateError(ValueError):
    pass


class StateWriter:
    def __init__(self):
        self._parts = []

    def u8(self, v: int) -> "StateWriter":
        self._parts.append(struct.pack("<B", v & 0xFF))
        return self

    def u32(self, v: int) -> "StateWriter":
        self._parts.append(struct.pack("<I", v))
        return self

    def u64(self, v: int) -> "StateWriter":
        self._parts.append(struct.pack("<Q", v))
        return self

    def i64(self, v: int) -> "StateWriter":
        self._parts.append(struct.pack("<q", v))
        return self

    def f64(self, v: float) -> "StateWriter":
        self._parts.append(struct.pack("<d", v))
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class StateReader:
    def __init__(self, data: bytes):
        self._data = memoryview(bytes(data))
        self._at = 0

    def is_empty(self) -> bool:
        return self._at >= len(self._data)

    def _take(self, fmt: str, n: int):
        if self._at + n > len(self._data):
            raise StateError(f"state ends at byte {len(self._data)}: {n} more bytes expected at byte {self._at}")
        (v,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += n
        return v

    def u8(self) -> int:
        return self._take("<B", 1)

    def u32(self) -> int:
        return self._take("<I", 4)

    def u64(self) -> int:
        return self._take("<Q", 8)

    def i64(self) -> int:
        return self._take("<q", 8)

    def f64(self) -> float:
        return self._take("<d", 8)
