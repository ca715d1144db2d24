"""Find free loopback ports: one for a server (the kernel picks), or a block for a group whose
instance N listens on base + N. Used by the demo and the benchmarks to stay clear of whatever
else runs on the machine. Only 127.0.0.1 is ever probed."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel reports free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(count: int, start: int, step: int = 50) -> int | None:
    """The first base (start, start + step, ...) whose base+1 .. base+count are all free, or None."""
    for base in range(start, 60000, step):
        if all(port_free(base + i) for i in range(1, count + 1)):
            return base
    return None
