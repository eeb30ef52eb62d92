"""Loopback ports for the servers the tests start.

Picking a port by binding to port 0 and closing the socket races: the kernel hands
the same port out again, to the next `bind(0)` (a Node peer listening on 0, another
pick) or as the source port of an outbound connection, and the server that starts
second dies with EADDRINUSE. Two CI runs failed that way.

So ports come from a range below the kernel's ephemeral range
(`net.ipv4.ip_local_port_range`), where the kernel never assigns anything on its own,
and this process never hands the same port out twice. Each port is still checked by a
bind before it is returned, in case something else on the machine holds it.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

_FLOOR = 10000
_lock = threading.Lock()
_given: set[int] = set()


def _range() -> tuple[int, int]:
    try:
        low, _high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low = 32768
    high = low - 1
    if high - _FLOOR < 2000:  # an unusual ephemeral range: fall back to the IANA dynamic range's gap
        return 20000, 32000
    return _FLOOR, high


_LOW, _HIGH = _range()
# Start somewhere that depends on the process, so two test runs on one machine rarely meet.
_cursor = _LOW + (os.getpid() * 7919) % (_HIGH - _LOW)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds and that no other test in this run was given."""
    global _cursor
    with _lock:
        for _ in range(_HIGH - _LOW):
            port = _cursor
            _cursor = _LOW if _cursor >= _HIGH else _cursor + 1
            if port in _given or not _bindable(port):
                continue
            _given.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {_LOW}-{_HIGH}")
