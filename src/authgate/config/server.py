"""Server section: where authgate listens, its public URL, its data and database, the HTTP edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from authgate.config.problems import Refusal
from authgate.config.urls import PublicUrls, canonicalize_public_url

FIXES: dict[str, str] = {
    "public_url": "set it to the URL clients use to reach authgate, e.g. https://mcp.example.com "
    "(plain http only for 127.0.0.1/localhost)",
    "host": "use an interface address such as 127.0.0.1, 0.0.0.0 or ::",
    "port": "use a TCP port between 1 and 65535",
    "data_dir": "use a directory authgate may create and write, e.g. /var/lib/authgate",
    "database_url": "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    "secret_key": "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "and set AUTHGATE_SECRET_KEY on every replica",
    "allowed_origins": 'list browser origins as scheme://host[:port], e.g. ["https://app.example.com"]',
    "trusted_proxies": 'list proxy addresses or CIDR networks, e.g. ["127.0.0.1", "10.0.0.0/8"], or ["*"]',
}


def _valid_port(value: Any) -> int | None:
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None


class ServerSettings(BaseModel):
    public_url: str = Field(
        "",
        description="URL clients use to reach authgate; issuer and resource derive from it "
        "(default: http://127.0.0.1:PORT)",
    )
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on")
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("authgate")),
        description="where the SQLite database, generated secret and first-user password live",
    )
    database_url: str | None = Field(None, description="SQLAlchemy async URL; default SQLite in data_dir")
    secret_key: SecretStr | None = Field(
        None,
        description="encrypts signing keys at rest and signs cookies; default: generated into "
        "data_dir/secret.key (required with PostgreSQL, identical on every replica)",
    )
    migrate: Literal["auto", "off"] = Field(
        "auto", description="auto: upgrade the schema at start under a lock; off: run `authgate db upgrade`"
    )
    mcp_max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="largest request body accepted on /mcp, bytes (larger: 413 before it is read)",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser Origins allowed on /mcp besides the public URL's own",
    )
    header_read_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="seconds a connection has to send a whole request head (from connecting, or from the "
        "first byte of a later request), and the longest silence inside a request body; past it: 408 or "
        "closed (authgate serve; slowloris)",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections authgate serve holds; past it a new one closes the one idle longest, "
        "or gets 503 when every connection serves a request",
    )
    shutdown_drain_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="seconds a stop (SIGTERM, SIGINT) lets requests in flight finish, with no new connection "
        "accepted and GET/listen streams ended at once; gateway calls still running then get a JSON-RPC "
        "error (503, retryable)",
    )
    shutdown_timeout: int = Field(
        10,
        ge=1,
        description="seconds a stop waits after the drain for the last answers and any other request "
        "before it cuts their connections, then closes the upstream, children, audit and store",
    )
    gc_tuning: bool = Field(
        True,
        description="after start-up, freeze the loaded heap and raise the collector's first "
        "threshold, so garbage collection stops costing every request (docs/benchmarks.md); turn off "
        "when authgate shares a process whose collector something else manages",
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="addresses or networks (CIDR) of the proxies in front, whose forwarded client address "
        '(`forwarded_header`) and scheme are believed; "*" trusts every peer',
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="the one header trusted_proxies write the client address into: X-Forwarded-For "
        "(with X-Forwarded-Proto) or Forwarded (RFC 7239); the other is ignored, since a proxy passes "
        "it on from the client untouched",
    )
    strict: bool = Field(
        False,
        description="refuse to start (exit status 2, one line naming the setting and the fix) where a "
        "start-up check would only warn: an advertised scope the external IdP does not list in its "
        "scopes_supported, an external IdP whose metadata cannot be fetched at start (the checks could not "
        "run), an accepted audience every token of the IdP carries (Keycloak's account), a plain-http "
        "upstream on a public address",
    )

    @model_validator(mode="before")
    @classmethod
    def _server_default_public_url(cls, data: Any) -> Any:
        # Derived from a valid port only: a wrong port is reported as `port`, not as a wrong URL.
        if isinstance(data, dict) and not data.get("public_url"):
            port = _valid_port(data.get("port", 8000))
            if port is None:
                return data
            host = str(data.get("host") or "127.0.0.1")
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            data = {**data, "public_url": f"http://{'[' + host + ']' if ':' in host else host}:{port}"}
        return data

    @field_validator("public_url")
    @classmethod
    def _server_canonical_public_url(cls, v: str) -> str:
        # Empty only when the port is wrong (no default could be derived): the port is reported.
        return canonicalize_public_url(v) if v else v

    @field_validator("database_url")
    @classmethod
    def _server_known_driver(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith("postgresql://") or v.startswith("postgres://"):
            raise ValueError(f"'{v.split('@')[-1]}' names no async driver")
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("only sqlite+aiosqlite:// and postgresql+asyncpg:// are supported")
        return v

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'authgate.db'}"

    @property
    def urls(self) -> PublicUrls:
        return PublicUrls(self.public_url)


def server_refusals(s: ServerSettings) -> list[Refusal]:
    """Rules across server settings, checked once every field is valid."""
    found = []
    if not s.public_url:
        found.append(Refusal("public_url", "is empty", depends=("port", "host")))
    if s.effective_database_url.startswith("postgresql") and s.secret_key is None:
        found.append(
            Refusal(
                "secret_key",
                "PostgreSQL may be shared by several replicas, which must all hold the same secret_key",
                depends=("database_url", "data_dir"),
            )
        )
    return found
