"""The listening socket of `authgate serve`, bound before the start-up work.

Bound first, a taken port stops `serve` at once with one line naming the setting, instead of a
"listening" banner, the whole start-up, and then uvicorn's `[Errno 98]`; and the socket bound is
the one uvicorn serves (no window in which another program could take the port).
"""

from __future__ import annotations

import errno
import socket

from authgate.errors import ConfigError


def bind_listener(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (as uvicorn binds one: IPv6 when the host has a colon,
    SO_REUSEADDR), not listening yet; a ConfigError naming `port` or `host` when it cannot be."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _refusal(host, port, exc) from None
    return sock


def _refusal(host: str, port: int, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            "port",
            f"{host}:{port} is already in use (another authgate, or another program, listens there)",
            f"stop that program (`ss -ltnp 'sport = :{port}'` names it), or choose another port: "
            "--port N or AUTHGATE_PORT=N",
        )
    if exc.errno == errno.EACCES:
        return ConfigError(
            "port",
            f"not allowed to listen on port {port} (ports below 1024 need privileges)",
            "use --port 1024 or above (AUTHGATE_PORT), behind a reverse proxy on 443",
        )
    return ConfigError(
        "host",
        f"cannot listen on {host}:{port}: {exc.strerror or exc}",
        "use an address of this machine: --host 127.0.0.1 (AUTHGATE_HOST), or 0.0.0.0 for every interface",
    )
