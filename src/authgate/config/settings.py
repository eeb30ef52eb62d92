"""One validated settings object: TOML file < AUTHGATE_* env vars < CLI flags.

Each field is one setting; the CLI builds a `--flag` per field (underscores become dashes),
so flags, env vars and TOML keys map onto it one to one. A wrong value fails at start with a
`ConfigError` that names the setting, what was wrong, and the fix.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from authgate.config.urls import PublicUrls, canonicalize_public_url
from authgate.errors import ConfigError

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("authgate_toml", default=None)

# What to tell the user for each setting when its value is refused.
_FIXES: dict[str, str] = {
    "public_url": "set it to the URL clients use to reach authgate, e.g. https://mcp.example.com "
    "(plain http only for 127.0.0.1/localhost)",
    "database_url": "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    "secret_key": "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "and set AUTHGATE_SECRET_KEY on every replica",
    "port": "use a TCP port between 1 and 65535",
    "issuer": "set issuer to the `issuer` value of the IdP's discovery document, exactly "
    "(check it with `authgate idp check ISSUER`)",
    "jwt_algorithms": "list the asymmetric algorithms your IdP signs with, e.g. [\"RS256\"]",
    "introspection_endpoint": "set the IdP's introspection endpoint URL (https, or http on loopback)",
    "introspection_client_secret": "set introspection_client_id and introspection_client_secret to a client "
    "the IdP allows to introspect",
    "mirror_as_metadata": "remove mirror_as_metadata, or set auth_mode = \"external\"",
    "dcr_grant_types": "list only authorization_code and refresh_token; create a machine client with "
    "`authgate clients add NAME --grant client_credentials --scopes …`",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTHGATE_", extra="forbid", validate_default=True, frozen=True
    )

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
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default SQLite in data_dir"
    )
    secret_key: SecretStr | None = Field(
        None,
        description="encrypts signing keys at rest and signs cookies; default: generated into "
        "data_dir/secret.key (required with PostgreSQL, identical on every replica)",
    )
    migrate: Literal["auto", "off"] = Field(
        "auto", description="auto: upgrade the schema at start under a lock; off: run `authgate db upgrade`"
    )
    access_token_ttl: int = Field(900, ge=30, le=86400, description="access token lifetime, seconds")
    refresh_token_ttl: int = Field(
        30 * 86400, ge=300, description="refresh token lifetime (renewed at each rotation), seconds"
    )
    code_ttl: int = Field(60, ge=10, le=600, description="authorization code lifetime, seconds")
    refresh_grace_seconds: int = Field(
        10, ge=0, le=120,
        description="window in which a just-rotated refresh token returns the same successor",
    )
    token_cache_seconds: int = Field(
        30, ge=0, le=300,
        description="how long the guard trusts a verified token before re-checking its grant and user "
        "(a revoked grant or removed user stops working within this time)",
    )
    login_session_ttl: int = Field(8 * 3600, ge=60, description="browser sign-in session lifetime, seconds")
    scopes: list[str] = Field(
        default_factory=lambda: ["mcp"], description="scopes the protected MCP server offers"
    )
    # -- per-operation policy and audit (authgate.policy, authgate.audit; docs/policy.md) --
    tool_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes a tool needs (all of them), by tool name ("*" matches any characters), '
        'e.g. {"docs.create": ["docs.write"]}; the embedded server offers them besides `scopes`',
    )
    resource_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description='scopes reading a resource needs, by URI ("*" wildcards), '
        'e.g. {"file:///private/*": ["files.read"]}',
    )
    prompt_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="scopes getting a prompt needs, by prompt name (\"*\" wildcards)"
    )
    default_operation_scopes: list[str] = Field(
        default_factory=list,
        description="scopes every tool, resource and prompt not named above needs "
        "(empty: any token authgate accepts)",
    )
    scope_implications: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes that satisfy others, e.g. {"docs.write": ["docs.read"]} (transitive)',
    )
    anonymous_operations: list[str] = Field(
        default_factory=list,
        description="operations allowed without a token: tool:NAME, resource:URI, prompt:NAME or a "
        "method; connecting and listing then need no token either",
    )
    list_mode: Literal["filter", "mark"] = Field(
        "filter",
        description="tools/resources/prompts lists: filter = only what the caller may use; "
        "mark = everything, each marked with the scopes it needs",
    )
    role_claim: str | None = Field(
        None,
        description="dotted path of a token claim holding roles or permissions, e.g. permissions, "
        "realm_access.roles, groups",
    )
    role_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="scopes each role in role_claim grants; empty: each value of role_claim is itself "
        "a scope (Auth0 RBAC permissions)",
    )
    tool_error_clients: list[str] = Field(
        default_factory=lambda: ["openai-mcp", "https://chatgpt.com/oauth/client.json"],
        description="clients (OAuth client_id, or MCP clientInfo name prefix; * = all) whose refused "
        "tools/call is answered as a tool error carrying _meta[\"mcp/www_authenticate\"] instead of a 403",
    )
    audit_arguments: bool = Field(
        False, description="also record tool and prompt arguments in the audit trail"
    )

    @field_validator("tool_scopes", "resource_scopes", "prompt_scopes", "scope_implications",
                     "role_scopes", "user_role_scopes", mode="before")
    @classmethod
    def _policy_maps_from_text(cls, v: Any) -> Any:
        from authgate.policy.checks import map_from_text

        return map_from_text(v)

    @field_validator("tool_scopes", "resource_scopes", "prompt_scopes", "default_operation_scopes",
                     "scope_implications", "anonymous_operations", "role_claim", "role_scopes")
    @classmethod
    def _policy_is_well_formed(cls, v: Any, info: Any) -> Any:
        from authgate.policy.checks import check_setting

        return check_setting(str(info.field_name), v, info.data)

    registration_enabled: bool = Field(True, description="allow RFC 7591 dynamic client registration")
    registrations_per_minute: int = Field(
        10, ge=1, description="dynamic registrations allowed per source address (IPv6: per /64) per minute"
    )
    max_clients: int = Field(
        10000, ge=1,
        description="cap on registered clients outside the unverified pool: those a user has consented to "
        "and operator-made ones; a registration is refused (503) only when these fill it",
    )
    client_idle_days: int = Field(
        30, ge=1, description="registered clients unused this long and holding no grant are pruned"
    )
    login_attempts_per_minute: int = Field(
        5, ge=1, description="sign-in attempts allowed per username and source address (IPv6 by /64) per "
        "minute; a successful sign-in clears the count"
    )
    dcr_grant_types: list[str] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"],
        description="grant types open dynamic registration may ask for; grants without a person "
        "(client_credentials) are only for clients an operator creates with `authgate clients add`",
    )

    @field_validator("dcr_grant_types")
    @classmethod
    def _dcr_grants_have_a_user(cls, v: list[str]) -> list[str]:
        # A grant without a person would hand anyone who can reach /register a token (issue 11)
        if "client_credentials" in v:
            raise ValueError("client_credentials is for machine clients an operator creates, never "
                             "for open registration")
        if unknown := [g for g in v if g not in ("authorization_code", "refresh_token")]:
            raise ValueError(f"{', '.join(unknown)} is not a grant type open registration can offer")
        return v

    max_unverified_clients: int = Field(
        1000, ge=10,
        description="dynamically registered clients that no user has consented to yet; when the pool is "
        "full the oldest is removed, so a new registration always succeeds",
    )
    login_attempts_per_account: int = Field(
        20, ge=1,
        description="sign-in attempts allowed per account per hour from addresses that have not signed "
        "in to it successfully before, however many addresses they come from (IPv6 counted by /64); "
        "known addresses are held only by login_attempts_per_minute, so an attack cannot lock the owner out",
    )
    max_concurrent_password_checks: int = Field(
        2, ge=1, le=64,
        description="password verifications (argon2) running at once, in worker threads; more wait "
        "(argon2 already uses several cores for one check: about the machine's core count)",
    )
    user_role_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"admin": ["*"]},
        description='embedded mode: scopes a user with each role may grant at consent ("*" = every '
        "offered scope); a user with no listed role may grant only `scopes`; the first user is admin",
    )
    mcp_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024,
        description="largest request body accepted on /mcp, bytes (larger: 413 before it is read)",
    )
    cimd_enabled: bool = Field(True, description="accept Client ID Metadata Documents (HTTPS client_id)")
    cimd_allow_loopback_http: bool = Field(
        False, description="TESTING ONLY: allow CIMD documents on http://127.0.0.1 / localhost"
    )
    cimd_timeout: float = Field(5.0, gt=0, le=30, description="CIMD fetch timeout, seconds")
    cimd_max_bytes: int = Field(65536, ge=1024, description="largest CIMD document accepted")
    cimd_ca_file: Path | None = Field(
        None, description="TESTING ONLY: extra CA bundle (PEM) trusted for CIMD fetches, e.g. a "
        "stand-in host's test CA (`authgate doctor --cimd-host-map`)",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser Origins allowed on /mcp besides the public URL's own",
    )
    # -- gateway: an upstream MCP server behind the guard (authgate.gateway) --------------
    upstream: str | None = Field(
        None,
        description="Streamable HTTP URL of the MCP server to protect, e.g. http://127.0.0.1:9000/mcp; "
        "default: the built-in server",
    )
    upstream_connect_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds to open a connection to the upstream"
    )
    upstream_first_byte_timeout: float = Field(
        300.0, gt=0, le=86400,
        description="seconds the upstream may take to start answering a request (a long tool answering "
        "in JSON counts here); past it the client gets 504",
    )
    upstream_idle_timeout: float = Field(
        300.0, gt=0, le=86400,
        description="seconds a streaming (SSE) answer may stay silent before the gateway ends it",
    )
    upstream_headers: dict[str, str] = Field(
        default_factory=dict,
        description='static headers sent upstream, e.g. an API key: {"X-Api-Key": "..."} '
        "(on the command line: a JSON object or one 'Name: value')",
    )
    upstream_bearer_token: SecretStr | None = Field(
        None, description="sent upstream as `Authorization: Bearer …` (the client's own token never is)"
    )
    upstream_command: list[str] | None = Field(
        None,
        description="a stdio MCP server to run and protect, e.g. "
        "['npx','-y','@modelcontextprotocol/server-everything'] (on the command line: "
        "`authgate serve -- CMD ARGS…`); one process per session / caller",
    )
    identity_headers: bool = Field(
        False,
        description="tell the upstream who is calling in X-Authgate-Subject, X-Authgate-Client-Id, "
        "X-Authgate-Scopes and X-Authgate-Username (copies sent by clients are always removed)",
    )

    @field_validator("upstream")
    @classmethod
    def _upstream_is_http_url(cls, v: str | None, info: Any) -> str | None:
        from urllib.parse import urlsplit

        if v is None or not v.strip():
            return None
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{v}' is not an http:// or https:// URL of a Streamable HTTP MCP endpoint")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("the URL carries credentials or a #fragment; send credentials with "
                             "upstream_bearer_token or upstream_headers")
        own = str(info.data.get("public_url", "")) + "/mcp"
        if v.rstrip("/") == own:
            raise ValueError(f"'{v}' is authgate's own MCP endpoint; name the server to protect")
        return v

    @field_validator("upstream_command")
    @classmethod
    def _one_upstream(cls, v: list[str] | None, info: Any) -> list[str] | None:
        if v is not None and (not v or not v[0].strip()):
            raise ValueError("the command is empty; give the program and its arguments")
        if v is not None and info.data.get("upstream"):
            raise ValueError("upstream is set too; protect either an HTTP upstream or a stdio command")
        return v

    @field_validator("upstream_headers", mode="before")
    @classmethod
    def _upstream_headers_from_text(cls, v: Any) -> Any:
        import json

        if not isinstance(v, str):
            return v
        text = v.strip()
        if text.startswith("{"):
            return json.loads(text)  # a ValueError names the JSON problem
        name, colon, value = text.partition(":")
        if not colon:
            raise ValueError("expected a JSON object or one 'Name: value'")
        return {name.strip(): value.strip()}

    @field_validator("upstream_headers")
    @classmethod
    def _upstream_headers_are_sendable(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        gateway_owned = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
                         "upgrade", "trailer", "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name"}
        for name, value in v.items():
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):  # RFC 9110 §5.6.2 token
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in gateway_owned or name.lower().startswith(("x-authgate-", "mcp-param-")):
                raise ValueError(f"{name} is set by the gateway itself or by the client; remove it")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of {name} contains a line break or NUL")
        return v

    @field_validator("upstream_bearer_token")
    @classmethod
    def _one_upstream_authorization(cls, v: SecretStr | None, info: Any) -> SecretStr | None:
        headers = info.data.get("upstream_headers") or {}
        if v is not None and any(name.lower() == "authorization" for name in headers):
            raise ValueError("upstream_headers already sets Authorization; keep one of the two")
        return v
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one object per line with request_id, subject, client_id, "
        "mcp_method, … (never a token or secret)",
    )
    shutdown_timeout: int = Field(
        10, ge=1, description="seconds a stop (SIGTERM) waits for requests and streams in flight (GET "
        "streams, subscriptions/listen) before it closes them, then the upstream, children, audit and store",
    )
    gc_tuning: bool = Field(
        True, description="after start-up, freeze the loaded heap and raise the collector's first "
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
    # -- external identity provider (authgate.idp): the IdP issues the tokens, authgate guards --
    auth_mode: Literal["embedded", "external", "proxy"] = Field(
        "embedded",
        description="embedded: authgate is the authorization server; external: an OAuth/OIDC identity "
        "provider (issuer) issues the tokens and authgate only guards /mcp; proxy: authgate is the "
        "authorization server and people sign in at an upstream IdP (idp_preset)",
    )
    idp_profile: Literal["generic", "auth0", "keycloak", "okta", "entra", "cognito"] = Field(
        "generic", description="the external IdP's known quirks (see docs/idp/); generic: any RFC 9068 IdP"
    )
    issuer: str | None = Field(
        None,
        description="external mode: the IdP's issuer, exactly as in its discovery document and tokens "
        "(a trailing slash matters: Auth0's ends with /)",
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="external mode: token `aud` values accepted (any one suffices); default: the MCP URL",
    )
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                                 "ES512", "EdDSA"],
        description="external mode: JWS algorithms accepted on access tokens (never none or HS*)",
    )
    jwt_require_typ: bool | None = Field(
        None,
        description="external mode: require the RFC 9068 `typ: at+jwt` header; default: the profile's "
        "(generic: yes; auth0, keycloak, okta, entra, cognito: no, they do not set it)",
    )
    jwks_refetch_seconds: int = Field(
        30, ge=1, le=3600,
        description="external mode: least time between two JWKS fetches when a token names an unknown key",
    )
    introspection_endpoint: str | None = Field(
        None, description="external mode: RFC 7662 endpoint for IdPs that issue opaque access tokens"
    )
    introspection_client_id: str | None = Field(
        None, description="client_id authgate authenticates with at introspection_endpoint"
    )
    introspection_client_secret: SecretStr | None = Field(
        None, description="client secret authgate authenticates with at introspection_endpoint"
    )
    mirror_as_metadata: bool = Field(
        False,
        description="external mode, for clients older than MCP 2025-06-18: serve the IdP's metadata as "
        "authgate's own RFC 8414 document (issuer = public_url; see docs/idp/external.md for trade-offs)",
    )

    # -- proxy mode (authgate.proxy): people sign in at an upstream IdP with authgate's one client --
    idp_preset: Literal["github", "google", "entra", "oidc", "oauth2"] | None = Field(
        None, description="proxy mode: the upstream IdP (see docs/idp/proxy.md); oidc: any OIDC issuer "
        "(discovery), oauth2: explicit endpoints")
    idp_issuer: str | None = Field(
        None, description="proxy mode: the upstream's OIDC issuer (oidc, entra; google: a stand-in's)")
    idp_authorize_url: str | None = Field(None, description="proxy mode: upstream authorization endpoint "
                                          "(oauth2; overrides the preset's)")
    idp_token_url: str | None = Field(None, description="proxy mode: upstream token endpoint (oauth2; "
                                      "overrides the preset's)")
    idp_userinfo_url: str | None = Field(None, description="proxy mode: upstream user info endpoint "
                                         "(oauth2; overrides the preset's; github: the API base)")
    idp_client_id: str | None = Field(None, description="proxy mode: authgate's client_id at the upstream")
    idp_client_secret: SecretStr | None = Field(None, description="proxy mode: authgate's client secret "
                                                "at the upstream")
    idp_scopes: list[str] = Field(default_factory=list, description="proxy mode: scopes asked of the "
                                  "upstream; default: the preset's")
    allowed_users: list[str] = Field(default_factory=list, description="proxy mode: upstream usernames "
                                     "(login) allowed to sign in; all four allow-lists empty: everyone")
    allowed_emails: list[str] = Field(default_factory=list, description="proxy mode: verified e-mail "
                                      "addresses allowed to sign in")
    allowed_email_domains: list[str] = Field(default_factory=list, description="proxy mode: e-mail "
                                             "domains allowed to sign in (verified addresses only)")
    allowed_github_orgs: list[str] = Field(default_factory=list, description="proxy mode, github: members "
                                           "of these organisations may sign in (asks read:org)")

    @model_validator(mode="after")
    def _proxy_is_complete(self) -> Settings:
        from authgate.proxy.config import proxy_problem

        problem = proxy_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("issuer")
    @classmethod
    def _issuer_is_exact_url(cls, v: str | None, info: Any) -> str | None:
        from authgate.idp.profiles import issuer_problem

        if v is None or not v.strip():
            if info.data.get("auth_mode") == "external":
                raise ValueError("auth_mode = external needs the identity provider's issuer")
            return None
        problem = issuer_problem(v.strip(), str(info.data.get("idp_profile", "generic")))
        if problem:
            raise ValueError(problem)
        return v.strip()  # kept exactly: tokens' `iss` is compared byte for byte

    @field_validator("audiences")
    @classmethod
    def _audiences_are_values(cls, v: list[str]) -> list[str]:
        for aud in v:
            if not aud or aud != aud.strip():
                raise ValueError(f"audience {aud!r} is empty or has surrounding whitespace")
        return v

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_algorithms_only(cls, v: list[str]) -> list[str]:
        from authgate.idp.profiles import SUPPORTED_ALGORITHMS

        if not v:
            raise ValueError("no algorithm left: no token could be verified")
        for alg in v:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(f"{alg} is never accepted: tokens must be signed with the IdP's private key "
                                 "(none is unsigned; HS* would let any holder of the secret mint tokens)")
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(f"{alg} is not one of {', '.join(SUPPORTED_ALGORITHMS)}")
        return v

    @field_validator("introspection_endpoint")
    @classmethod
    def _introspection_is_url(cls, v: str | None) -> str | None:
        from authgate.idp.profiles import issuer_problem

        if v is None or not v.strip():
            return None
        problem = issuer_problem(v.strip(), "generic")
        if problem:
            raise ValueError(problem.replace("issuer", "introspection endpoint"))
        return v.strip()

    @field_validator("introspection_client_secret")
    @classmethod
    def _introspection_credentials(cls, v: SecretStr | None, info: Any) -> SecretStr | None:
        if info.data.get("introspection_endpoint") and (v is None or not info.data.get("introspection_client_id")):
            raise ValueError("introspection_endpoint needs introspection_client_id and introspection_client_secret "
                             "(RFC 7662 §2.1: the resource server authenticates)")
        return v

    @field_validator("mirror_as_metadata")
    @classmethod
    def _mirror_only_external(cls, v: bool, info: Any) -> bool:
        if v and info.data.get("auth_mode") != "external":
            raise ValueError("the mirror applies to auth_mode = external only (embedded mode serves its own metadata)")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _default_public_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("public_url"):
            port = data.get("port", 8000)
            host = str(data.get("host") or "127.0.0.1")
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            data = {**data, "public_url": f"http://{'[' + host + ']' if ':' in host else host}:{port}"}
        return data

    @field_validator("public_url")
    @classmethod
    def _canonical_public_url(cls, v: str) -> str:
        return canonicalize_public_url(v)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith("postgresql://") or v.startswith("postgres://"):
            raise ValueError(f"'{v.split('@')[-1]}' names no async driver")
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("only sqlite+aiosqlite:// and postgresql+asyncpg:// are supported")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes_are_tokens(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or any(c.isspace() or c in '"\\' for c in s):
                raise ValueError(f"scope {s!r} is not a valid scope-token (RFC 6749 §3.3)")
        if "offline_access" in v:
            raise ValueError("offline_access is not a resource scope; authgate handles it itself")
        return v

    @model_validator(mode="after")
    def _secret_needed_for_shared_db(self) -> Settings:
        if self.effective_database_url.startswith("postgresql") and self.secret_key is None:
            raise ValueError(
                "secret_key: PostgreSQL may be shared by several replicas, which must all hold the "
                "same secret_key"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'authgate.db'}"

    @property
    def urls(self) -> PublicUrls:
        return PublicUrls(self.public_url)


def _to_config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    setting = loc[0] if loc else "settings"
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    named = msg.split(": ", 1)[0]
    if setting == "settings" and named in Settings.model_fields:  # a model-level check naming its setting
        setting, msg = named, msg.removeprefix(named + ": ")
    if first.get("type") == "extra_forbidden":
        return ConfigError(setting, "is not a known setting", "remove it or check its spelling "
                           "(see `authgate serve --help` for every setting)")
    fix = _FIXES.get(setting, f"see `authgate serve --help` for the allowed values of {setting}")
    return ConfigError(setting, msg, fix)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the TOML file, the environment and explicit overrides (CLI)."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError("config", f"file {config_file} does not exist", "pass an existing TOML file to --config")
    token = _toml_path.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _to_config_error(exc) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError("config", str(exc), "fix the TOML syntax") from None
    finally:
        _toml_path.reset(token)
