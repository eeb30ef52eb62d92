"""The doctor's HTTP side: one client that never follows redirects and bounds every wait, the
Bearer challenge read strictly (RFC 6750 §3; the grammar of RFC 9110 §11 by
`authgate.www_authenticate`) and JSON-RPC over Streamable HTTP (a JSON body or an SSE stream)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from authgate._version import __version__
from authgate.errors import Unreachable
from authgate.httpx_errors import translated
from authgate.www_authenticate import Challenge, find_challenge, parse_challenges

__all__ = ["ACCEPT_MCP", "Challenge", "Exchange", "RpcAnswer", "Wire", "bearer_challenge", "parse_challenges"]

ACCEPT_MCP = "application/json, text/event-stream"
_MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    url: str
    status: int | None


@dataclass(frozen=True, slots=True)
class RpcAnswer:
    status: int
    headers: httpx.Headers
    message: dict[str, Any] | None  # the JSON-RPC response with our id, if one came
    text: str  # the body (or what was read of the stream), for error messages

    @property
    def result(self) -> dict[str, Any] | None:
        value = (self.message or {}).get("result")
        return value if isinstance(value, dict) else None

    @property
    def error(self) -> dict[str, Any] | None:
        value = (self.message or {}).get("error")
        return value if isinstance(value, dict) else None


class Wire:
    """`httpx.AsyncClient` with the doctor's rules; `log` keeps every exchange."""

    def __init__(self, *, timeout: float = 10.0, verify: Any = True) -> None:
        # 10 s: the discovery/registration/token timeout Claude applies (REFERENCE.md).
        self.http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            verify=verify,
            trust_env=False,
            headers={"User-Agent": f"authgate-doctor/{__version__}"},
        )
        self.log: list[Exchange] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            with translated(f"{method} {url}"):
                response = await self.http.request(method, url, **kwargs)
        except Unreachable:  # no HTTP answer (DNS, TCP, TLS, timeout)
            self.log.append(Exchange(method, url, None))
            raise
        self.log.append(Exchange(method, url, response.status_code))
        self.http.cookies.clear()  # API clients keep no cookies between requests
        return response

    async def get_json(self, url: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, Any]:
        """GET a JSON document; the parsed body is None when it is not JSON."""
        response = await self.request("GET", url, headers=headers)
        try:
            return response, response.json()
        except ValueError:
            return response, None

    async def rpc(self, url: str, message: dict[str, Any], headers: dict[str, str]) -> RpcAnswer:
        """POST one JSON-RPC message; read a JSON body or the SSE stream until our response."""
        try:
            with translated(f"POST {url}"):
                return await self._rpc(url, message, headers)
        except Unreachable:
            self.log.append(Exchange("POST", url, None))
            raise

    async def _rpc(self, url: str, message: dict[str, Any], headers: dict[str, str]) -> RpcAnswer:
        async with self.http.stream("POST", url, json=message, headers=headers) as response:
            self.log.append(Exchange("POST", url, response.status_code))
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "text/event-stream" and response.status_code == 200:
                text, found = await _read_sse(response, message.get("id"))
            else:
                text = (await _read_bounded(response)).decode("utf-8", "replace")
                found = _json_object(text)
            self.http.cookies.clear()
            return RpcAnswer(response.status_code, response.headers, found, text[:2000])


async def _read_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > _MAX_BODY:
            break
    return bytes(body)


async def _read_sse(response: httpx.Response, want_id: Any) -> tuple[str, dict[str, Any] | None]:
    """Read `data:` events until the JSON-RPC response carrying `want_id` arrives."""
    seen: list[str] = []
    data: list[str] = []
    async for line in response.aiter_lines():
        seen.append(line)
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            message = _json_object("\n".join(data))
            data = []
            if message is not None and message.get("id") == want_id and "method" not in message:
                return "\n".join(seen), message
        if sum(len(s) for s in seen) > _MAX_BODY:
            break
    return "\n".join(seen), None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- WWW-Authenticate ------------------------------------------------------------------------


def bearer_challenge(headers: httpx.Headers) -> Challenge | None:
    """The Bearer challenge among every `WWW-Authenticate` field, read strictly: a value that
    is neither a token nor a quoted-string is dropped and named in `problem`, for the report."""
    return find_challenge(headers.get_list("www-authenticate"), "bearer")
