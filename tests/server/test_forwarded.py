"""The client address behind trusted proxies (server/forwarded.py): X-Forwarded-For or RFC
7239 Forwarded, from trusted peers only, read from the right, never an address a client put
in front of what the proxies appended."""

from __future__ import annotations

from typing import Any

import pytest

from authgate.server.forwarded import TrustedProxies, client_host


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 50000),
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


def resolved(proxies: TrustedProxies, s: dict[str, Any]) -> tuple[str, str]:
    proxies.resolve(s)
    return client_host(s), s["scheme"]


XFF = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
FWD = TrustedProxies(["127.0.0.1", "10.0.0.0/8"], "forwarded")


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # an untrusted peer: its headers are not believed
        ("203.0.113.5", [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "https")], ("203.0.113.5", "http")),
        ("127.0.0.1", [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "https")], ("192.0.2.1", "https")),
        # the client's own claim on the left is skipped: the rightmost untrusted entry wins
        ("127.0.0.1", [("X-Forwarded-For", "6.6.6.6, 192.0.2.1, 10.1.2.3")], ("192.0.2.1", "http")),
        ("127.0.0.1", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "192.0.2.1")], ("192.0.2.1", "http")),
        ("127.0.0.1", [("X-Forwarded-For", "[2001:db8::1]:4711")], ("2001:db8::1", "http")),
        ("127.0.0.1", [("X-Forwarded-For", "192.0.2.1:8080")], ("192.0.2.1", "http")),
        # every hop trusted: the first
        ("127.0.0.1", [("X-Forwarded-For", "10.0.0.9, 10.0.0.8")], ("10.0.0.9", "http")),
        # not an address: the peer stays (a client cannot pick a fresh limit key per request)
        ("127.0.0.1", [("X-Forwarded-For", "unknown")], ("127.0.0.1", "http")),
        ("127.0.0.1", [("X-Forwarded-For", "192.0.2.1, garbage")], ("127.0.0.1", "http")),
        # in x-forwarded-for mode, Forwarded is not believed
        ("127.0.0.1", [("Forwarded", "for=192.0.2.1;proto=https")], ("127.0.0.1", "http")),
        ("127.0.0.1", [], ("127.0.0.1", "http")),
    ],
)
def test_x_forwarded_for(peer: str, headers: list[tuple[str, str]], expected: tuple[str, str]) -> None:
    assert resolved(XFF, scope(peer, *headers)) == expected


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("127.0.0.1", [("Forwarded", "for=192.0.2.1;proto=https")], ("192.0.2.1", "https")),
        (
            "127.0.0.1",
            [("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1')],
            ("2001:db8:cafe::17", "https"),
        ),
        ("127.0.0.1", [("Forwarded", "for=6.6.6.6, for=192.0.2.1, for=10.0.0.3")], ("192.0.2.1", "http")),
        ("127.0.0.1", [("Forwarded", "For=192.0.2.1")], ("192.0.2.1", "http")),  # names are case-insensitive
        # a client's unbalanced quote cannot swallow the entry its proxy appended
        ("127.0.0.1", [("Forwarded", 'for="6.6.6.6, for="[2001:db8::9]"')], ("2001:db8::9", "http")),
        ("127.0.0.1", [("Forwarded", "for=_hidden")], ("127.0.0.1", "http")),  # obfuscated: the peer stays
        ("127.0.0.1", [("Forwarded", "by=10.0.0.1")], ("127.0.0.1", "http")),
        ("203.0.113.5", [("Forwarded", "for=192.0.2.1")], ("203.0.113.5", "http")),
        # in forwarded mode, X-Forwarded-For is not believed
        ("127.0.0.1", [("X-Forwarded-For", "192.0.2.1")], ("127.0.0.1", "http")),
    ],
)
def test_forwarded(peer: str, headers: list[tuple[str, str]], expected: tuple[str, str]) -> None:
    assert resolved(FWD, scope(peer, *headers)) == expected


def test_star_trusts_every_peer_and_takes_the_first_entry() -> None:
    proxies = TrustedProxies(["*"])
    assert resolved(proxies, scope("203.0.113.5", ("X-Forwarded-For", "192.0.2.1, 10.0.0.1"))) == ("192.0.2.1", "http")


def test_no_client_and_lifespan_scopes_are_left_alone() -> None:
    s: dict[str, Any] = {"type": "http", "headers": [(b"x-forwarded-for", b"192.0.2.1")]}
    XFF.resolve(s)
    assert client_host(s) == "-"
    lifespan: dict[str, Any] = {"type": "lifespan"}
    XFF.resolve(lifespan)
    assert lifespan == {"type": "lifespan"}
