"""Reading a request body through ASGI `receive`, bounded: the one reader the HTTP proxy, the
stdio bridge and the policy layer share; and handing a body already read on (`replaying`)."""

from __future__ import annotations

from starlette.types import Message, Receive

from authgate.errors import AuthgateError
from authgate.gateway.errors import BodyTooLarge

# Where a layer that parsed the body leaves it in the ASGI scope, as (raw bytes, what
# json.loads made of them), so the app behind it need not parse the same bytes again (the
# policy layer sets it, the HTTP proxy reads it when the bytes it got are the same object).
PARSED_BODY_KEY = "authgate.parsed_body"


class ClientGone(AuthgateError):
    """The client disconnected before its whole body arrived: nothing to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body. Raises BodyTooLarge past `limit` bytes, ClientGone on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the real channel (so the
    app still hears a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
