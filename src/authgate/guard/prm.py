"""Protected resource metadata (RFC 9728)."""

from __future__ import annotations

from typing import Any

from authgate.config.settings import Settings
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
        **published_scope_map(settings),  # what each tool, resource and prompt needs (docs/policy.md)
    }
