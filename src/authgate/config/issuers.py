"""Checks of an issuer (or any IdP endpoint) URL, per IdP profile, and the algorithms accepted.

Plain functions of the values, used by the settings (config/external.py, config/proxy.py) at
start and by `authgate idp check`; they sit in config/ so the settings import nothing above.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from authgate.config.urls import is_loopback_host
from authgate.masking import masked_url

# `Ed25519` is RFC 9864's fully specified name; `EdDSA` (deprecated by it) is what many IdPs still
# put in their tokens' header, so both are accepted.
SUPPORTED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "Ed25519",
    "EdDSA",
)


def _profile_issuer_problem(issuer: str, profile: str) -> str | None:
    path = urlsplit(issuer).path
    if profile == "auth0" and not issuer.endswith("/"):
        return f"Auth0's issuer ends with '/': use '{issuer}/'"
    if profile == "keycloak" and not re.fullmatch(r"(/auth)?/realms/[^/]+", path):
        return f"a Keycloak issuer is https://HOST/realms/REALM, not '{issuer}'"
    if profile == "okta" and not path.startswith("/oauth2/"):
        return (
            f"'{issuer}' is Okta's org authorization server; use a custom one, e.g. {issuer.rstrip('/')}/oauth2/default"
        )
    if profile == "entra" and not re.fullmatch(r"/[^/]+/v2\.0", path):
        return f"an Entra ID issuer is https://login.microsoftonline.com/TENANT-ID/v2.0, not '{issuer}'"
    if profile == "entra" and path.split("/")[1] in ("common", "organizations", "consumers"):
        return "an Entra ID issuer names one tenant id, not common/organizations/consumers"
    return None


def issuer_problem(issuer: str, profile: str = "generic") -> str | None:
    """What is wrong with `issuer` for this profile, or None. Never normalizes: the value is
    compared with tokens' `iss` byte for byte."""
    parts = urlsplit(issuer)
    shown = masked_url(issuer)  # the refused value may carry a password or a key: never print it
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"issuer '{shown}' is not an https:// URL"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return f"issuer '{shown}' uses http on a non-loopback host; HTTPS is required"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"issuer '{shown}' must not carry a query, fragment or credentials (RFC 8414 §2)"
    return _profile_issuer_problem(issuer, profile)  # no credentials or query left to hide
