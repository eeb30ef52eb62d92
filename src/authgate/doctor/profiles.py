"""What each real MCP client is known to do, as data the steps replay.

Sources are cited per field (see also `../shared/REFERENCE.md` in the project and
`data/README.md` for the pinned documents). Where clients are known to differ from the MCP
specification, the profile says so instead of pretending they follow it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

ScopeStrategy = Literal["challenge", "as_all"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CHATGPT_STABLE_REDIRECT = "https://chatgpt.com/connector_platform_oauth_redirect"


@dataclass(frozen=True, slots=True)
class ClientProfile:
    name: str
    label: str
    redirect_uri: str  # `{port}` / `{callback_id}` are filled in per run
    dcr_body: Mapping[str, Any]  # what the client POSTs to the registration endpoint
    cimd_url: str | None = None  # its client ID metadata document, if it has one
    cimd_file: str | None = None  # the pinned copy in data/
    cimd_needs_none: bool = False  # uses CIMD only if the AS advertises auth method `none`
    browser_origin: str | None = None  # runs in a browser: CORS applies, Origin is sent
    legacy_version: str = "2025-11-25"  # protocolVersion of its `initialize`
    modern: bool = False  # speaks 2026-07-28 (`server/discover`) first
    refuses_without_s256: bool = True  # MCP 2025-11-25: refuse when S256 is not advertised
    register_fallback: bool = False  # POSTs to {origin}/register without a registration_endpoint
    strict_resource: bool = True  # PRM `resource` must equal the URL (RFC 9728 §3.3)
    scope_strategy: ScopeStrategy = "challenge"
    discovery_header: bool = True  # sends MCP-Protocol-Version on metadata requests

    @property
    def loopback_redirect(self) -> bool:
        return (urlsplit(self.redirect_uri).hostname or "") in LOOPBACK_HOSTS

    @property
    def token_auth_method(self) -> str:
        return str(self.dcr_body.get("token_endpoint_auth_method", "client_secret_basic"))


_GRANTS = ["authorization_code", "refresh_token"]

CHATGPT = ClientProfile(
    name="chatgpt",
    label="ChatGPT",
    # RFC 9207 servers get the stable URI; others a per-connection one (REFERENCE.md).
    redirect_uri=CHATGPT_STABLE_REDIRECT,
    # Registers once per connection, confidential, Basic at /token, no `scope`; asks for every
    # scope the AS advertises (a ChatGPT + Keycloak integration checklist, 2025-09).
    dcr_body={
        "client_name": "ChatGPT",
        "grant_types": _GRANTS,
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
    cimd_url="https://chatgpt.com/oauth/client.json",
    cimd_file="chatgpt-client.json",
    legacy_version="2025-06-18",
    scope_strategy="as_all",
    discovery_header=False,
)
CLAUDE = ClientProfile(
    name="claude",
    label="Claude (claude.ai)",
    redirect_uri="https://claude.ai/api/mcp/auth_callback",
    # Registers anew on every fresh connection (REFERENCE.md).
    dcr_body={
        "client_name": "Claude",
        "grant_types": _GRANTS,
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post",
    },
    cimd_url="https://claude.ai/oauth/mcp-oauth-client-metadata",
    cimd_file="claude-mcp-oauth-client-metadata.json",
    cimd_needs_none=True,  # Claude connector docs (2026)
    discovery_header=False,
)
CLAUDE_CODE = ClientProfile(
    name="claude-code",
    label="Claude Code",
    redirect_uri="http://localhost:{port}/callback",
    dcr_body={
        "client_name": "Claude Code",
        "grant_types": _GRANTS,
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    },
    cimd_url="https://claude.ai/oauth/claude-code-client-metadata",
    cimd_file="claude-code-client-metadata.json",
    cimd_needs_none=True,
    # TypeScript SDK: hierarchical, slash-insensitive match. Some versions ignore
    # resource_metadata and read only the root PRM (anthropics/claude-code#58802).
    strict_resource=False,
)
INSPECTOR = ClientProfile(
    name="inspector",
    label="MCP Inspector (browser)",
    redirect_uri="http://localhost:6274/oauth/callback",
    dcr_body={
        "client_name": "MCP Inspector",
        "grant_types": _GRANTS,
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "client_uri": "https://github.com/modelcontextprotocol/inspector",
    },
    browser_origin="http://localhost:6274",
    strict_resource=False,
)
SDK = ClientProfile(
    name="sdk",
    label="MCP Python SDK (mcp 2.3.0)",
    redirect_uri="http://127.0.0.1:{port}/callback",
    # OAuthClientProvider's registration body; `scope` is added per run (SEP-2207).
    dcr_body={
        "client_name": "authgate doctor (mcp SDK)",
        "grant_types": _GRANTS,
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    },
    # Does not check code_challenge_methods_supported; always sends S256.
    modern=True,
    refuses_without_s256=False,
    register_fallback=True,
    strict_resource=False,
)

PROFILES: dict[str, ClientProfile] = {p.name: p for p in (CHATGPT, CLAUDE, CLAUDE_CODE, INSPECTOR, SDK)}

# Which clients look for PRM at a well-known location even when the header points elsewhere.
NEEDS_ROOT_PRM = (
    "ChatGPT (observed in 2025 to expect the root document)",
    "Claude Code (reads only the root document, anthropics/claude-code#58802)",
)
NEEDS_PATH_PRM = (
    "clients without the 2025-11-25 root fallback that build the RFC 9728 §3.1 "
    "path-suffixed URL when the header is missing or ignored",
)


def select(names: list[str] | tuple[str, ...]) -> list[ClientProfile]:
    if not names or "all" in names:
        return list(PROFILES.values())
    return [PROFILES[n] for n in names]


def concrete_redirect_uri(profile: ClientProfile, port: int, *, iss_supported: bool) -> str:
    """The redirect URI this run uses (loopback clients pick a port; ChatGPT falls back to a
    per-connection callback when the server lacks RFC 9207)."""
    if profile is CHATGPT and not iss_supported:
        return f"https://chatgpt.com/connector/oauth/{secrets.token_hex(8)}"
    return profile.redirect_uri.format(port=port)


def mapped_cimd_url(profile: ClientProfile, host_map: Mapping[str, str]) -> str | None:
    """The client's CIMD URL, with its host replaced by a stand-in base URL when mapped
    (`chatgpt.com=https://127.0.0.1:8443`)."""
    if profile.cimd_url is None:
        return None
    parts = urlsplit(profile.cimd_url)
    base = host_map.get(parts.hostname or "")
    if base is None:
        return profile.cimd_url
    target = urlsplit(base.rstrip("/"))
    return urlunsplit((target.scheme, target.netloc, target.path + parts.path, parts.query, ""))


def pinned_document(profile: ClientProfile, client_id: str | None = None) -> dict[str, Any]:
    """The pinned copy of the client's CIMD document, `client_id` rewritten if given."""
    if profile.cimd_file is None:
        raise ValueError(f"{profile.label} publishes no client ID metadata document")
    text = resources.files("authgate.doctor").joinpath("data", profile.cimd_file).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    if client_id is not None:
        document["client_id"] = client_id
    return document


def parse_host_map(items: list[str]) -> dict[str, str]:
    """`["chatgpt.com=https://127.0.0.1:8443", …]` → `{"chatgpt.com": "https://127.0.0.1:8443"}`."""
    out: dict[str, str] = {}
    for item in items:
        host, sep, base = item.partition("=")
        if not sep or not host or not base.startswith(("https://", "http://")):
            raise ValueError(f"--cimd-host-map {item!r}: expected HOST=https://STAND-IN[:PORT]")
        out[host.strip().lower()] = base.strip()
    return out
