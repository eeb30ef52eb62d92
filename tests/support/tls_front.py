"""A TLS-terminating front for a loopback HTTP server, as a reverse proxy gives one in production.

`tls_front(cert_file, key_file, backend_port)` listens on 127.0.0.1 with the certificate (e.g.
`authgate.doctor.standin.make_test_ca`'s, valid for 127.0.0.1) and relays each connection's
bytes to `127.0.0.1:backend_port` unchanged, in a thread of its own; it yields the https base
URL. `authgate serve` speaks plain HTTP behind such a front, so an authgate whose public_url is
https (a CIMD document, secure cookies) runs on loopback this way. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

_START_TIMEOUT = 10.0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.contextmanager
def tls_front(cert_file: Path, key_file: Path, backend_port: int) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_file), str(key_file))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", backend_port), 10)
        except (OSError, TimeoutError):
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = await asyncio.start_server(relay, sock=sock, ssl=context)
        started.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name=f"tls-front-{port}", daemon=True)
    thread.start()
    if not started.wait(_START_TIMEOUT):
        raise RuntimeError(f"the TLS front on port {port} did not start")
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        sock.close()
