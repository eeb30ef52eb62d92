"""Discovery documents: RFC 8414 authorization server metadata and RFC 9728 protected
resource metadata.

No OIDC discovery document is served: the embedded server issues no ID tokens, so it does
not advertise `openid` (ChatGPT requests every advertised OIDC scope, and a half-OIDC server
breaks it). A client asking for `openid` anyway has it dropped, and the token response says
what was granted.
"""

from __future__ import annotations

from typing import Any

from authgate.oauth.client_keys import SIGNING_ALGS
from authgate.oauth.config import CoreConfig
from authgate.oauth.dpop import ALGS as DPOP_ALGS
from authgate.oauth.jwt_bearer import GRANT_TYPE as JWT_BEARER
from authgate.oauth.jwt_bearer import ID_JAG_PROFILE
from authgate.oauth.registration import AUTH_METHODS
from authgate.oauth.scopes import OFFLINE_ACCESS


def authorization_server_metadata(config: CoreConfig) -> dict[str, Any]:
    urls = config.urls
    doc: dict[str, Any] = {
        "issuer": urls.issuer,
        "authorization_endpoint": urls.endpoint("authorize"),
        "token_endpoint": urls.endpoint("token"),
        "jwks_uri": urls.endpoint("jwks.json"),
        "revocation_endpoint": urls.endpoint("revoke"),
        "scopes_supported": [*config.offered_scopes, OFFLINE_ACCESS],  # baseline + the policy's
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # private_key_jwt (RFC 7523 §2.2): asymmetric algorithms only (oauth/client_keys.py)
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "client_id_metadata_document_supported": config.cimd_enabled,
        "resource_indicators_supported": True,
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),  # RFC 9449 §5.1
    }
    if config.registration_enabled:
        doc["registration_endpoint"] = urls.endpoint("register")
    if config.enterprise_idps or config.workload_issuers:  # RFC 7523 §2.1 (oauth/jwt_bearer.py)
        doc["grant_types_supported"].append(JWT_BEARER)
    if config.enterprise_idps:  # the ID-JAG draft §8
        doc["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
    return doc
