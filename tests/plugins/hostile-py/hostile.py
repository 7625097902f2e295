"""Misbehaves on purpose, one attack per `mode`; tests/sandbox/python.rs runs
each beside the Rust sma-cross and checks it is contained with a named reason.
Every attack starts on the first cross-section, in `on_bars`.
"""

import sys

import stratbox
from stratbox import Ctx, Init, PluginInfo, Side, Strategy, market

try:  # at import time, as a plugin should; the socket functions are refused
    import socket
except ImportError:
    socket = None


def _recurse(n):
    return _recurse(n + 1) + 1


@stratbox.export
class Hostile(Strategy):
    @staticmethod
    def describe():
        return (PluginInfo("hostile-py", "0.1.0")
                .description("misbehaves on purpose; see tests/sandbox/python.rs")
                .param_text("mode", "which attack to carry out", "none"))

    def __init__(self, ctx: Ctx, init: Init):
        self.mode = init.params.text("mode")
        if self.mode == "init-exception":
            raise RuntimeError("no edge in this market")
        ctx.info(f"hostile-py armed: {self.mode}")

    def on_bars(self, ctx, bars):
        mode = self.mode
        if mode == "spin":
            n = 0
            while True:
                n += 1
        if mode == "memory-bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "recursion":
            return _recurse(0)
        if mode == "deep-recursion":
            sys.setrecursionlimit(1_000_000)
            return _recurse(0)
        if mode == "exception":
            return self.lookup({}, "missing")
        if mode == "intent-flood":
            return [market(bars[0].instrument, Side.BUY, 1.0)] * 1_000_000
        if mode == "log-flood":
            for _ in range(1_000_000):
                ctx.info("x" * 1024)
        if mode == "open-file":
            with open("/etc/passwd") as f:
                return f.read()
        if mode == "socket":
            socket.create_connection(("127.0.0.1", 80))
        if mode == "import-in-handler":
            import statistics  # noqa: F401  (first imported here: refused)
        if mode == "wall-clock":
            import time
            time.time()
        return None

    @staticmethod
    def lookup(table, key):
        return table[key]
