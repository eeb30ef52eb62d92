"""`authgate idp check`: probe an identity provider the way authgate and MCP clients will use it.

Each finding names what was seen and, for a problem, the exact setting to change (at authgate
or at the IdP). Probes, in order: the issuer's shape for the profile; the discovery documents
(RFC 8414 and OIDC, `issuer` exact); PKCE S256; Dynamic Client Registration (a real test
registration only with `register`, deleted again via RFC 7592 where the IdP allows it); refresh
tokens; whether RFC 8707 `resource` is honoured (a client_credentials token's `aud`, when client
credentials are given); then the profile's known traps.

report.py        `CheckOptions`, the findings (`CheckReport`) and their text
documents.py     the issuer's shape for the profile; the discovery documents
metadata.py      what the metadata advertises: PKCE S256, DCR, refresh tokens, jwks_uri, RFC 9207
registration.py  the test registration (`register`) and its RFC 7592 deletion
resource.py      RFC 8707 `resource`: the audience of a client_credentials token
id_jag.py        `--id-jag`: the IdP offers ID-JAGs by token exchange (Enterprise-Managed Authorization)
preflight.py     `run_check`: the probes in order, then the profile's traps
"""

from authgate.idp.check.documents import check_discovery
from authgate.idp.check.metadata import check_metadata
from authgate.idp.check.preflight import add_profile_traps, run_check
from authgate.idp.check.registration import CHECK_REDIRECT_URI, check_registration
from authgate.idp.check.report import CheckOptions, CheckReport, Finding, Level, render_text
from authgate.idp.check.resource import check_resource

__all__ = [
    "CHECK_REDIRECT_URI",
    "CheckOptions",
    "CheckReport",
    "Finding",
    "Level",
    "add_profile_traps",
    "check_discovery",
    "check_metadata",
    "check_registration",
    "check_resource",
    "render_text",
    "run_check",
]
