"""Form bodies (server/forms.py): `read_form` answers every body as Starlette's `request.form()`
(python-multipart) does — the fields, their decoding, the limits and their errors — while
parsing `application/x-www-form-urlencoded` itself."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from authgate.server.forms import read_form

URLENCODED = "application/x-www-form-urlencoded"


def request(body: bytes, content_type: str | None = URLENCODED, *, in_app: bool = True, chunk: int = 0) -> Request:
    """A Request over an ASGI scope and a receive that hands `body` over (in `chunk`-byte pieces)."""
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/x", "headers": headers, "query_string": b""}
    if in_app:
        scope["app"] = object()  # Starlette turns the parser's refusals into 400s inside an app
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk and body else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return Request(scope, receive)


def outcome(form: Any) -> Any:
    """What a parse produced: the fields in order, or the refusal's kind and text."""

    async def run() -> Any:
        try:
            result = await form
        except HTTPException as exc:
            return ("HTTPException", exc.status_code, exc.detail)
        except MultiPartException as exc:
            return ("MultiPartException", exc.message)
        assert isinstance(result, FormData)
        return list(result.multi_items())

    return asyncio.run(run())


def both(body: bytes, content_type: str | None = URLENCODED, *, in_app: bool = True, **limits: Any) -> tuple[Any, Any]:
    ours = outcome(read_form(request(body, content_type, in_app=in_app), **limits))
    starlettes = outcome(request(body, content_type, in_app=in_app, chunk=7).form(**limits))
    return ours, starlettes


BODIES = [
    b"",
    b"grant_type=refresh_token&refresh_token=abc&client_id=xyz",
    b"a=1&a=2&b=",
    b"&&a=1&&&b=2&",
    b"=",
    b"=x&y",
    b"novalue&x=1",
    b"a=b=c",
    b"sp+ace=%20%2B+plus&pct=%E2%82%AC&bad=%ZZ%&utf8bad=%ff%fe",
    b"\xe9t\xe9=\xff",
    b"scope=mcp%20offline_access&resource=https%3A%2F%2Fx.example%2Fmcp&resource=https%3A%2F%2Fy",
    b"a;b=c;d&e=f",
]


@pytest.mark.parametrize("body", BODIES)
def test_urlencoded_fields_as_starlette_reads_them(body: bytes) -> None:
    ours, starlettes = both(body)
    assert ours == starlettes


@pytest.mark.parametrize(
    ("body", "limits"),
    [
        (b"&".join(b"f%d=1" % i for i in range(51)), {"max_fields": 50}),
        (b"&".join(b"f%d=1" % i for i in range(50)), {"max_fields": 50}),
        (b"&".join(b"f%d" % i for i in range(1001)), {}),
        (b"x=" + b"a" * 40000, {"max_part_size": 32 * 1024}),
        (b"x=" + b"a" * (32 * 1024 - 1), {"max_part_size": 32 * 1024}),
        (b"x=" + b"a" * (32 * 1024), {"max_part_size": 32 * 1024}),
        (b"a" * 40000 + b"=1", {"max_part_size": 32 * 1024}),
        # which refusal comes first: a field too large before the count it would pass
        (b"a=1&b=2&" + b"c=" + b"x" * 100, {"max_fields": 2, "max_part_size": 50}),
        (b"a=1&b=2&c=3&" + b"d=" + b"x" * 100, {"max_fields": 2, "max_part_size": 50}),
    ],
)
def test_limits_refused_as_starlette_refuses_them(body: bytes, limits: dict[str, Any]) -> None:
    for in_app in (True, False):
        ours, starlettes = both(body, in_app=in_app, **limits)
        assert ours == starlettes


@pytest.mark.parametrize(
    "content_type",
    [
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        "application/json",
        "text/plain",
        None,
        "multipart/form-data; boundary=zz",
    ],
)
def test_other_content_types_as_starlette(content_type: str | None) -> None:
    body = b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--zz--\r\n'
    assert both(body, content_type) == both(body, content_type)[::-1]
    assert both(b"a=1&b=2", content_type)[0] == both(b"a=1&b=2", content_type)[1]


def test_random_bodies_read_alike() -> None:
    rng = random.Random(18)
    alphabet = b"ab=&+%2Fe9;\xe9 "
    for _ in range(400):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        limits = {"max_fields": rng.randint(1, 6), "max_part_size": rng.randint(1, 20)}
        ours, starlettes = both(body, **limits)
        assert ours == starlettes, body


def test_the_form_is_kept_on_the_request() -> None:
    req = request(b"a=1")

    async def twice() -> tuple[FormData, FormData]:
        first = await read_form(req)
        return first, await req.form()

    first, second = asyncio.run(twice())
    assert first is second
