"""What the OAuth core reads of the settings: a small frozen value, built once at start-up
(server/runtime.py) and held by the Authority, instead of the whole `Settings` object.

The core never imports the settings model at run time; `from_settings` only names it for
the type checker. Values only the HTTP adapters read (cookie lifetimes, registration pool
sizes, the policy) stay with the adapters, which keep the settings themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from authgate.config.urls import PublicUrls

if TYPE_CHECKING:
    from authgate.config.enterprise import EnterpriseIdp, WorkloadIssuer
    from authgate.config.settings import Settings


@dataclass(frozen=True, slots=True)
class CoreConfig:
    urls: PublicUrls
    auth_mode: Literal["embedded", "external", "proxy"]  # per-user scope limits apply in embedded mode only
    scopes: tuple[str, ...]  # the baseline: the default grant, what PRM and the 401 challenge advertise
    offered_scopes: tuple[str, ...]  # `scopes`, then every scope the policy names (docs/policy.md)
    user_role_scopes: Mapping[str, tuple[str, ...]]  # role → the scopes it may grant ("*" = every offered one)
    code_ttl: int
    access_token_ttl: int
    refresh_token_ttl: int
    refresh_grace_seconds: int  # a just-rotated refresh token replays its successor this long
    registration_enabled: bool
    cimd_enabled: bool
    # private_key_jwt: the token endpoint URL as an assertion's aud too (legacy, off by default)
    assertion_token_endpoint_aud: bool = False
    # DPoP (RFC 9449, oauth/dpop.py): proofs required for every token; server nonces asked for
    dpop_required: bool = False
    dpop_nonce: bool = False
    dpop_proof_max_age: int = 300
    dpop_scopes: frozenset[str] = frozenset()  # a token granting one of these must be DPoP-bound
    # the jwt-bearer grant (oauth/jwt_bearer.py): trusted ID-JAG issuers and workload issuers
    enterprise_idps: Mapping[str, EnterpriseIdp] = field(default_factory=lambda: MappingProxyType({}))
    workload_issuers: Mapping[str, WorkloadIssuer] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_settings(cls, settings: Settings) -> CoreConfig:
        # the policy's model reads the policy sections; imported here so the core module does not
        # load the settings model (policy.model imports it) just to be imported
        from authgate.policy.model import offered_scopes

        return cls(
            urls=settings.urls,
            auth_mode=settings.auth_mode,
            scopes=tuple(settings.scopes),
            offered_scopes=tuple(offered_scopes(settings)),
            user_role_scopes=MappingProxyType(
                {role: tuple(named) for role, named in settings.user_role_scopes.items()}
            ),
            code_ttl=settings.code_ttl,
            access_token_ttl=settings.access_token_ttl,
            refresh_token_ttl=settings.refresh_token_ttl,
            refresh_grace_seconds=settings.refresh_grace_seconds,
            registration_enabled=settings.registration_enabled,
            cimd_enabled=settings.cimd_enabled,
            assertion_token_endpoint_aud=settings.client_assertion_token_endpoint_audience,
            dpop_required=settings.dpop_required,
            dpop_nonce=settings.dpop_nonce,
            dpop_proof_max_age=settings.dpop_proof_max_age,
            dpop_scopes=frozenset(settings.dpop_required_scopes),
            enterprise_idps=MappingProxyType(dict(settings.enterprise_idps)),
            workload_issuers=MappingProxyType(dict(settings.workload_issuers)),
        )
