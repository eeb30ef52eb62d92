"""Protected resource metadata (RFC 9728)."""

from __future__ import annotations

from typing import Any

from authgate.config.settings import Settings
from authgate.oauth.dpop import ALGS as DPOP_ALGS
from authgate.policy.model import published_scope_map


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    urls = settings.urls
    return {
        "resource": urls.resource,  # exactly the MCP URL, no trailing slash
        # external mode: the IdP is the authorization server (its issuer, exactly)
        "authorization_servers": [
            settings.issuer if settings.auth_mode == "external" and settings.issuer else urls.issuer
        ],
        "scopes_supported": list(settings.scopes),  # never offline_access: not a resource scope
        "bearer_methods_supported": ["header"],
        "resource_name": "authgate MCP endpoint",
        # RFC 9449 §5.1 / RFC 9728 §2: what the guard accepts; required only when configured
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
        "dpop_bound_access_tokens_required": settings.dpop_required,
        **published_scope_map(settings),  # what each tool, resource and prompt needs (docs/policy.md)
    }
