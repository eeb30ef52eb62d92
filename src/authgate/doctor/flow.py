"""The options of one doctor run, and the state one client's replay builds up as its steps
run (each step reads what earlier steps established and adds what it learned)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from authgate.doctor.findings import Registration
from authgate.doctor.profiles import LOOPBACK_HOSTS, ClientProfile
from authgate.doctor.wire import Challenge, Wire

NO_CREDENTIALS = "no credentials: pass --user NAME --password-stdin, --token TOKEN or --interactive to sign in"


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    url: str
    clients: tuple[str, ...] = ("all",)
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # kept in memory only, never printed
    interactive: bool = False
    cimd_host_map: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    interactive_timeout: float = 300.0
    strict: bool = False
    keep_clients: bool = False  # leave what it registered (RFC 7592 delete skipped), e.g. to inspect it

    @property
    def credentials(self) -> Literal["token", "password", "interactive", "none"]:
        if self.token:
            return "token"
        if self.username and self.password is not None:
            return "password"
        return "interactive" if self.interactive else "none"


@dataclass(slots=True)
class ClientCredentials:
    client_id: str
    redirect_uri: str
    auth_method: str  # how it authenticates at the token endpoint
    via: Literal["dcr", "cimd"]
    client_secret: str | None = field(default=None, repr=False)
    # private_key_jwt: the key to sign client assertions with (the CIMD stand-in's, testing only)
    assertion_key: Any = field(default=None, repr=False)


@dataclass(slots=True)
class Flow:
    """What one client's replay has established so far. A field left None means "not
    established"; `missing` may say why, for the steps that then cannot run."""

    profile: ClientProfile
    options: DoctorOptions
    wire: Wire
    url: str
    port: int  # the loopback port this client's redirect URI uses
    signin: bool | None = None  # the server asked for sign-in (401), as clients need
    challenge: Challenge | None = None
    challenge_headers: httpx.Headers | None = None  # of the unauthenticated answer (CORS checks)
    prm: dict[str, Any] | None = None
    prm_url: str | None = None
    resource: str | None = None  # what this client sends as RFC 8707 `resource`
    as_url: str | None = None  # authorization_servers[0]
    as_candidate: dict[str, Any] | None = None  # metadata found, issuer not yet checked
    as_meta_url: str | None = None
    as_meta: dict[str, Any] | None = None  # metadata the client accepted
    pkce_ok: bool | None = None
    client: ClientCredentials | None = None
    registration: Registration | None = None
    scope: str | None = None
    state: str | None = None
    verifier: str | None = None
    authorize_ok: bool | None = None  # the authorization request was accepted
    auth_response: dict[str, str] | None = None
    access_token: str | None = field(default=None, repr=False)
    tokens: dict[str, Any] | None = field(default=None, repr=False)
    session_id: str | None = None
    negotiated_version: str | None = None
    initialized: bool | None = None
    cors_seen: dict[str, httpx.Headers] = field(default_factory=dict)  # OAuth answers, for CORS
    missing: dict[str, str] = field(default_factory=dict)

    def base_headers(self) -> dict[str, str]:
        """Headers this client puts on every request (a browser adds Origin)."""
        origin = self.profile.browser_origin
        return {"Origin": origin} if origin else {}

    def discovery_headers(self) -> dict[str, str]:
        headers = self.base_headers()
        if self.profile.discovery_header:
            headers["MCP-Protocol-Version"] = "2026-07-28" if self.profile.modern else self.profile.legacy_version
        return headers

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def meta(self, name: str) -> Any:
        return (self.as_meta or self.as_candidate or {}).get(name)


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
