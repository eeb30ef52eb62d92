"""Every requirement the tests prove, one constant each: its spec, its section and one line.

A test names what it proves with `@pytest.mark.requirement(req.RFC9700_4_14_2_REUSE_REVOKES_FAMILY)`
(`from support import requirements as req`; tests/ is on pytest's `pythonpath`). tests/conftest.py
fails collection when a `requirement` mark is anything but one of these constants, and
scripts/requirements_matrix.py writes docs/requirements.md, each requirement with the tests that
prove it (tests/unit/test_requirements_matrix.py keeps that file current).

Adding one: a constant named `<SPEC>_<SECTION>_<WHAT>`, in its spec's block, section order; the
spec a key of SPECS. One requirement, one constant: reuse the constant rather than rewording it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Requirement:
    spec: str  # a key of SPECS
    section: str  # "§4.14.2", a section's name, or "" for the document as a whole
    text: str  # what must hold, one line

    def __str__(self) -> str:
        return f"{self.spec} {self.section}: {self.text}" if self.section else f"{self.spec}: {self.text}"


# The specs, in the order docs/requirements.md lists them, each with its title.
SPECS: dict[str, str] = {
    "OAuth 2.1": "The OAuth 2.1 Authorization Framework (draft-ietf-oauth-v2-1)",
    "RFC 6585": "Additional HTTP Status Codes",
    "RFC 6749": "The OAuth 2.0 Authorization Framework",
    "RFC 6750": "OAuth 2.0 Bearer Token Usage",
    "RFC 7009": "OAuth 2.0 Token Revocation",
    "RFC 7517": "JSON Web Key (JWK)",
    "RFC 7519": "JSON Web Token (JWT)",
    "RFC 7523": "JWT Profile for OAuth 2.0 Client Authentication and Authorization Grants "
    "(with draft-ietf-oauth-rfc7523bis-11)",
    "RFC 7591": "OAuth 2.0 Dynamic Client Registration Protocol",
    "RFC 7592": "OAuth 2.0 Dynamic Client Registration Management Protocol",
    "RFC 7636": "Proof Key for Code Exchange (PKCE)",
    "RFC 7662": "OAuth 2.0 Token Introspection",
    "RFC 8252": "OAuth 2.0 for Native Apps",
    "RFC 8414": "OAuth 2.0 Authorization Server Metadata",
    "RFC 8707": "Resource Indicators for OAuth 2.0",
    "RFC 8725": "JSON Web Token Best Current Practices",
    "RFC 9068": "JWT Profile for OAuth 2.0 Access Tokens",
    "RFC 9207": "OAuth 2.0 Authorization Server Issuer Identification",
    "RFC 9449": "OAuth 2.0 Demonstrating Proof of Possession (DPoP)",
    "RFC 9700": "OAuth 2.0 Security Best Current Practice",
    "RFC 9728": "OAuth 2.0 Protected Resource Metadata",
    "OIDC Core": "OpenID Connect Core 1.0",
    "CIMD": "OAuth Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document)",
    "JSON-RPC 2.0": "JSON-RPC 2.0 Specification",
    "MCP 2025-03-26": "Model Context Protocol, revision 2025-03-26",
    "MCP 2025-06-18": "Model Context Protocol, revision 2025-06-18",
    "MCP 2025-11-25": "Model Context Protocol, revision 2025-11-25",
    "MCP 2026-07-28": "Model Context Protocol, revision 2026-07-28",
    "OpenAI Apps SDK": "OpenAI Apps SDK (ChatGPT as an MCP client)",
    "authgate": "authgate's own requirements (issues and design rules)",
}

# -- OAuth 2.1 ---------------------------------------------------------------------------------
OAUTH21_1_5_TLS = Requirement("OAuth 2.1", "§1.5", "HTTPS is required except on loopback")
OAUTH21_4_1_1_PKCE_REQUIRED = Requirement(
    "OAuth 2.1", "§4.1.1", "code_challenge is REQUIRED: an authorization request without PKCE is refused"
)
OAUTH21_4_1_1_REDIRECT_URI_EXACT = Requirement("OAuth 2.1", "§4.1.1", "the redirect URI is compared by exact string")
OAUTH21_4_1_3_CODE_REPLAY_REVOKES = Requirement(
    "OAuth 2.1", "§4.1.3", "a replayed code fails and revokes the tokens it issued"
)
OAUTH21_4_3_1_REFRESH_ROTATES = Requirement("OAuth 2.1", "§4.3.1", "refresh tokens for public clients rotate")
OAUTH21_4_3_1_KEEP_ROTATED_TOKEN = Requirement(
    "OAuth 2.1", "§4.3.1", "reuse detection needs the rotated token, kept until it expires"
)

# -- RFC 6585 ----------------------------------------------------------------------------------
RFC6585_5_HEADERS_TOO_LARGE = Requirement("RFC 6585", "§5", "request headers over the limit are 431, not read whole")

# -- RFC 6749 ----------------------------------------------------------------------------------
RFC6749_2_3_1_CLIENT_PASSWORD = Requirement(
    "RFC 6749", "§2.3.1", "a client with a secret authenticates with it (client_secret_basic or _post)"
)
RFC6749_3_3_GRANTED_SCOPE = Requirement(
    "RFC 6749", "§3.3", "the token response's scope says what was granted when it differs"
)
RFC6749_4_1_2_CODE_SINGLE_USE = Requirement(
    "RFC 6749", "§4.1.2", "an authorization code MUST NOT be used more than once"
)
RFC6749_4_1_2_1_ACCESS_DENIED = Requirement(
    "RFC 6749", "§4.1.2.1", "a refused user is an access_denied redirect to the client"
)
RFC6749_4_1_2_1_INVALID_SCOPE = Requirement(
    "RFC 6749", "§4.1.2.1", "invalid_scope, with state and iss, to the verified redirect URI"
)
RFC6749_4_1_2_1_NO_REDIRECT_UNVERIFIED = Requirement(
    "RFC 6749", "§4.1.2.1", "never redirect to an unverified redirect URI"
)
RFC6749_4_1_2_1_ERROR_STATE = Requirement(
    "RFC 6749", "§4.1.2.1", "an error redirect carries the request's state, and none when it sent none"
)
RFC6749_5_2_JSON_ERRORS = Requirement("RFC 6749", "§5.2", "token and revocation errors are JSON (and RFC 7009 §2.2.1)")
RFC6749_5_2_INVALID_GRANT = Requirement("RFC 6749", "§5.2", "a refresh token whose grant has ended is invalid_grant")
RFC6749_5_2_INVALID_CLIENT = Requirement(
    "RFC 6749", "§5.2", "invalid_client is 401, with a Basic challenge when Basic was used"
)
RFC6749_5_2_UNAUTHORIZED_CLIENT = Requirement(
    "RFC 6749", "§5.2", "unauthorized_client for a grant type the client may not use"
)
RFC6749_6_REFRESH_SCOPE = Requirement("RFC 6749", "§6", "a refresh may narrow but never widen scope")

# -- RFC 6750 ----------------------------------------------------------------------------------
RFC6750_3_1_INVALID_TOKEN = Requirement("RFC 6750", "§3.1", "an expired token is invalid_token")
RFC6750_3_1_INSUFFICIENT_SCOPE = Requirement(
    "RFC 6750", "§3.1", "a token without the scope a request needs is insufficient_scope"
)

# -- RFC 7009 ----------------------------------------------------------------------------------
RFC7009_2_1_REVOKE_GRANT = Requirement("RFC 7009", "§2.1", "revoking a refresh token revokes its grant")

# -- RFC 7517 ----------------------------------------------------------------------------------
RFC7517_4_5_KID_REFETCH = Requirement(
    "RFC 7517",
    "§4.5",
    "an unknown kid refetches the JWKS (rate-limited), so a rotated key (RFC 8414 jwks_uri) is picked up",
)

# -- RFC 7519 ----------------------------------------------------------------------------------
RFC7519_2_NUMERIC_DATE = Requirement(
    "RFC 7519", "§2", "a NumericDate is a JSON number; anything else is refused, not ignored"
)
RFC7519_4_1_5_NBF = Requirement(
    "RFC 7519", "§4.1.5", "the JWT MUST NOT be accepted before nbf, a NumericDate (any JSON number)"
)

# -- RFC 7523 ----------------------------------------------------------------------------------
RFC7523_2_2_PRIVATE_KEY_JWT = Requirement(
    "RFC 7523",
    "§2.2",
    "private_key_jwt: a client authenticates at the token endpoint with a JWT signed by a key it registered "
    "(jwks or jwks_uri), iss = sub = client_id; no assertion, or another client's, is invalid_client",
)
RFC7523_3_AUDIENCE_ISSUER = Requirement(
    "RFC 7523",
    "§3 item 3 (rfc7523bis-11)",
    "the assertion's aud is the issuer as its sole value (a string or a one-element array); the token "
    "endpoint URL only behind a legacy setting; any other aud is invalid_client",
)
RFC7523_3_EXP_BOUNDED = Requirement(
    "RFC 7523", "§3 item 4", "exp is required; an expired assertion, or one valid too far ahead, is refused"
)
RFC7523_3_JTI_SINGLE_USE = Requirement(
    "RFC 7523", "§3 item 7", "a jti is accepted once, on every replica, until its assertion expires"
)
RFC7523_3_SIGNATURE_BY_CLIENT_KEY = Requirement(
    "RFC 7523",
    "§3 item 9",
    "the signature verifies with the client's own key, chosen by kid: alg none, HS256 keyed with the public "
    "key and an unknown kid are refused",
)

# -- RFC 7591 ----------------------------------------------------------------------------------
RFC7591_2_REDIRECT_URIS = Requirement(
    "RFC 7591", "§2", "redirect URIs are HTTPS or loopback, without a fragment (OAuth 2.1 §2.3.1)"
)
RFC7591_2_DEFAULT_AUTH_METHOD = Requirement(
    "RFC 7591", "§2", "the default token_endpoint_auth_method is client_secret_basic"
)
RFC7591_3_REGISTRATION = Requirement("RFC 7591", "§3", "clients register themselves at the registration endpoint")
RFC7591_3_2_1_CLIENT_INFORMATION = Requirement(
    "RFC 7591",
    "§3.2.1",
    "the registration response has the client_id, and client_secret_expires_at when a secret is issued",
)
RFC7591_3_2_2_INVALID_METADATA = Requirement(
    "RFC 7591", "§3.2.2", "invalid_client_metadata for metadata the server refuses"
)

# -- RFC 7592 ----------------------------------------------------------------------------------
RFC7592_2_3_DELETE = Requirement("RFC 7592", "§2.3", "a client deletes its registration")
RFC7592_2_INVALID_TOKEN = Requirement(
    "RFC 7592",
    "§2",
    "a wrong or missing registration access token, or another client's, is 401 invalid_token (RFC 6750 §3), "
    "the same answer whether or not the client exists",
)
RFC7592_2_1_READ = Requirement(
    "RFC 7592", "§2.1", "a client reads its registration with its registration access token (rotated on use)"
)
RFC7592_2_2_UPDATE_REPLACES = Requirement(
    "RFC 7592",
    "§2.2",
    "an update replaces the metadata through the registration's own checks and refusals; client_id must "
    "match and a client_secret sent must be the current one",
)
RFC7592_3_MANAGEMENT_CREDENTIALS = Requirement(
    "RFC 7592",
    "§3",
    "a DCR registration answer carries registration_access_token and registration_client_uri; the token "
    "is stored only as a hash; operator-made and CIMD clients have none",
)

# -- RFC 7636 ----------------------------------------------------------------------------------
RFC7636_4_6_VERIFIER_MATCHES = Requirement(
    "RFC 7636", "§4.6", "the code_verifier must match the challenge, else invalid_grant"
)
RFC7636_B_S256_VECTOR = Requirement("RFC 7636", "Appendix B", "the S256 test vector")

# -- RFC 7662 ----------------------------------------------------------------------------------
RFC7662_2_INTROSPECTION = Requirement("RFC 7662", "§2", "opaque tokens are checked at the introspection endpoint")

# -- RFC 8252 ----------------------------------------------------------------------------------
RFC8252_7_3_LOOPBACK_ANY_PORT = Requirement("RFC 8252", "§7.3", "loopback redirect URIs match on any port")

# -- RFC 8414 ----------------------------------------------------------------------------------
RFC8414_2_METADATA_FIELDS = Requirement(
    "RFC 8414", "§2", "the REQUIRED fields; S256 advertised (MCP); iss support (RFC 9207)"
)
RFC8414_2_AUTH_SIGNING_ALGS = Requirement(
    "RFC 8414",
    "§2",
    "private_key_jwt and its token_endpoint_auth_signing_alg_values_supported (asymmetric only) are advertised",
)
RFC8414_3_METADATA_DOCUMENT = Requirement("RFC 8414", "§3", "the metadata document is served at the well-known URI")
RFC8414_3_1_PATH_INSERTION = Requirement(
    "RFC 8414", "§3.1", "the well-known URI is built by path insertion (and RFC 9728 §3.1)"
)
RFC8414_3_3_ISSUER_IDENTICAL = Requirement(
    "RFC 8414", "§3.3", "the metadata's issuer is identical to the issuer it was fetched for"
)

# -- RFC 8707 ----------------------------------------------------------------------------------
RFC8707_2_AUDIENCE = Requirement("RFC 8707", "§2", "the token's audience is the resource it was requested for")
RFC8707_2_INVALID_TARGET = Requirement(
    "RFC 8707", "§2", "invalid_target for a resource this authorization server does not serve"
)

# -- RFC 8725 ----------------------------------------------------------------------------------
RFC8725_3_1_ALGORITHM_PINNED = Requirement(
    "RFC 8725", "§3.1", "the algorithm is pinned: none, symmetric and unlisted algorithms are refused"
)

# -- RFC 9068 ----------------------------------------------------------------------------------
RFC9068_2_SHAPE = Requirement("RFC 9068", "§2", "issued access tokens are typ at+jwt with the required claims")
RFC9068_2_1_TYP_AT_JWT = Requirement("RFC 9068", "§2.1", "an access token is typ at+jwt: an ID token is refused")
RFC9068_4_AUD = Requirement("RFC 9068", "§4", "a token whose aud does not name this resource is refused (RFC 8707)")
RFC9068_4_ISS = Requirement("RFC 9068", "§4", "a token from another issuer is refused")
RFC9068_4_EXP = Requirement("RFC 9068", "§4", "an expired token is refused (with a small leeway)")
RFC9068_EXTERNAL_IDP = Requirement(
    "RFC 9068", "", "JWT access tokens from a second real IdP are validated and accepted"
)

# -- RFC 9207 ----------------------------------------------------------------------------------
RFC9207_ISS = Requirement("RFC 9207", "§2", "the authorization response carries iss and the client checks it")

# -- RFC 9700 ----------------------------------------------------------------------------------
RFC9700_4_1_3_REDIRECT_URI = Requirement(
    "RFC 9700",
    "§4.1.3",
    "a redirect URI is one exact, printable URI: no userinfo, control characters or whitespace (RFC 3986 §2)",
)
RFC9700_4_14_2_ONE_SUCCESSOR = Requirement("RFC 9700", "§4.14.2", "a rotated refresh token is replaced by exactly one")
RFC9700_4_14_2_REUSE_REVOKES_FAMILY = Requirement(
    "RFC 9700", "§4.14.2", "on refresh token reuse, revoke the whole family"
)
RFC9700_4_14_2_USER_CHANGE_ENDS_TOKENS = Requirement(
    "RFC 9700", "§4.14.2", "a password change or the user's removal ends their refresh tokens"
)

# -- RFC 9728 ----------------------------------------------------------------------------------
RFC9728_2_AUTHORIZATION_SERVERS = Requirement("RFC 9728", "§2", "authorization_servers names where to sign in")
RFC9728_3_WELL_KNOWN = Requirement(
    "RFC 9728", "§3", "the metadata is served at the path-suffixed and the root well-known URLs"
)
RFC9728_3_2_RESPONSE = Requirement(
    "RFC 9728", "§3.2", "the metadata response names the resource and its authorization servers"
)
RFC9728_3_3_RESOURCE_IDENTICAL = Requirement(
    "RFC 9728", "§3.3", "the metadata's resource is identical to the URL it was fetched for"
)
RFC9728_5_1_WWW_AUTHENTICATE = Requirement(
    "RFC 9728", "§5.1", "a 401 carries WWW-Authenticate with resource_metadata (and scope)"
)

# -- OpenID Connect Core -----------------------------------------------------------------------
OIDC_CORE_2_ID_TOKEN_NOT_ACCESS_TOKEN = Requirement("OIDC Core", "§2", "ID tokens are not access tokens")

# -- CIMD --------------------------------------------------------------------------------------
CIMD_CLIENT_ID_URL = Requirement("CIMD", "client identifier", "https, a path, no fragment, userinfo or dot segments")
CIMD_CLIENT_ID_EQUALS_URL = Requirement(
    "CIMD", "client metadata", "client_id equals the requested URL by simple string comparison, not a redirect target"
)
CIMD_NO_SHARED_SECRET = Requirement("CIMD", "client metadata", "no shared secret and no secret-based auth method")
CIMD_CACHE_HEADERS = Requirement("CIMD", "metadata caching", "cached per the HTTP cache headers, within bounds")
CIMD_SSRF_PUBLIC_ADDRESSES = Requirement(
    "CIMD",
    "security, SSRF",
    "every resolved address must be public: private, link-local, loopback (outside testing mode)"
    " and embedded addresses are refused",
)
CIMD_SSRF_PINNED_ADDRESS = Requirement(
    "CIMD", "security, SSRF", "connect only to the address checked (no DNS rebinding)"
)
CIMD_SSRF_TLS_FOR_HOST = Requirement(
    "CIMD", "security, SSRF", "TLS verified for the client_id's host while the pinned IP is dialled"
)
CIMD_SSRF_REDIRECT_HOPS = Requirement("CIMD", "security, SSRF", "each redirect hop is checked like the first request")
CIMD_RESPONSE_SIZE = Requirement("CIMD", "security, response size", "the response size is bounded")

# -- JSON-RPC 2.0 ------------------------------------------------------------------------------
JSONRPC_6_BATCH = Requirement("JSON-RPC 2.0", "§6", "a batch passes as one (MCP 2025-03-26 batches)")
JSONRPC_6_BATCH_ELEMENT_ERRORS = Requirement("JSON-RPC 2.0", "§6", "each malformed batch element gets its own error")

# -- MCP 2025-03-26 ----------------------------------------------------------------------------
MCP_2025_03_26_GET_STREAM = Requirement(
    "MCP 2025-03-26",
    "transports §Listening for Messages from the Server",
    "the GET stream carries what the server sends outside requests",
)
MCP_2025_03_26_BATCH_AUTHORIZED = Requirement("MCP 2025-03-26", "transports", "every element of a batch is authorized")

# -- MCP 2025-06-18 ----------------------------------------------------------------------------
MCP_2025_06_18_NO_TOKEN_PASSTHROUGH = Requirement(
    "MCP 2025-06-18", "authorization", "no token passthrough: the caller's token never reaches the upstream"
)

# -- MCP 2025-11-25 ----------------------------------------------------------------------------
MCP_2025_11_25_AUTH_FLOW = Requirement("MCP 2025-11-25", "authorization", "the whole sign-in flow, then the upstream")
MCP_2025_11_25_AUTH_401_STARTS_SIGN_IN = Requirement(
    "MCP 2025-11-25", "authorization", "a 401 without a token is what starts sign-in"
)
MCP_2025_11_25_AUTH_PRM_DISCOVERY = Requirement(
    "MCP 2025-11-25", "authorization", "clients discover the protected resource metadata"
)
MCP_2025_11_25_AUTH_OIDC_DISCOVERY = Requirement(
    "MCP 2025-11-25", "authorization", "OpenID Connect discovery of the authorization server"
)
MCP_2025_11_25_AUTH_CLIENT_REGISTRATION = Requirement(
    "MCP 2025-11-25", "authorization", "a client without a metadata document registers (DCR)"
)
MCP_2025_11_25_AUTH_CIMD = Requirement(
    "MCP 2025-11-25", "authorization", "client ID metadata documents instead of registration"
)
MCP_2025_11_25_AUTH_PKCE_S256 = Requirement("MCP 2025-11-25", "authorization", "clients sign in with PKCE S256")
MCP_2025_11_25_AUTH_S256_ONLY = Requirement(
    "MCP 2025-11-25", "authorization", "code_challenge_method S256 only: plain is refused"
)
MCP_2025_11_25_AUTH_S256_ADVERTISED = Requirement(
    "MCP 2025-11-25", "authorization", "S256 is advertised: clients refuse a server without it"
)
MCP_2025_11_25_AUTH_SCOPE_CHALLENGE = Requirement(
    "MCP 2025-11-25",
    "authorization §Scope Challenge Handling",
    "a missing scope is a 403 insufficient_scope challenge, and the client steps up",
)
MCP_2025_11_25_AUTH_NO_SIGN_IN_LOOP = Requirement(
    "MCP 2025-11-25", "authorization", "no sign-in loop while the IdP is unreachable"
)
MCP_2025_11_25_CONFUSED_DEPUTY = Requirement(
    "MCP 2025-11-25", "security best practices", "confused deputy: consent before the upstream"
)
MCP_2025_11_25_SESSION_HIJACKING = Requirement(
    "MCP 2025-11-25", "security best practices", "session hijacking: a session is bound to the user who opened it"
)
MCP_2025_11_25_ORIGIN = Requirement(
    "MCP 2025-11-25", "transport security", "Origin is validated, parsed as a URL; an invalid one is 403"
)
MCP_2025_11_25_HOST = Requirement("MCP 2025-11-25", "transport security", "Host is checked against DNS rebinding")
MCP_2025_11_25_ACCEPT = Requirement(
    "MCP 2025-11-25", "transports", "Accept lists application/json and text/event-stream"
)
MCP_2025_11_25_TRANSPARENT_GATEWAY = Requirement(
    "MCP 2025-11-25",
    "transports",
    "Streamable HTTP through the gateway passes every conformance check it passes directly",
)
MCP_2025_11_25_SSE_BYTE_FOR_BYTE = Requirement(
    "MCP 2025-11-25", "transports", "SSE id:/retry: lines pass byte for byte; X-Accel-Buffering: no"
)
MCP_2025_11_25_SERVER_REQUESTS_OVER_SSE = Requirement(
    "MCP 2025-11-25", "transports", "server→client requests go over SSE, their responses are POSTed back"
)
MCP_2025_11_25_SESSION_404_NEW_SESSION = Requirement(
    "MCP 2025-11-25", "transports §Session Management", "on 404 the client starts a new session"
)
MCP_2025_11_25_SESSION_DELETE = Requirement(
    "MCP 2025-11-25", "transports §Session Management", "DELETE ends the session"
)
MCP_2025_11_25_STDIO_SHUTDOWN = Requirement(
    "MCP 2025-11-25", "lifecycle §Shutdown", "over stdio, the client ends the server process"
)
MCP_2025_11_25_CANCELLED_NOTIFICATION = Requirement(
    "MCP 2025-11-25", "cancellation", "notifications/cancelled stops the request"
)
MCP_2025_11_25_TOOLS_OUTPUT_SCHEMA = Requirement(
    "MCP 2025-11-25", "tools", "structured content MUST conform to the tool's outputSchema"
)
MCP_2025_11_25_TOOLS_IS_ERROR = Requirement(
    "MCP 2025-11-25", "tools", "tool execution errors are reported in the result with isError"
)
MCP_2025_11_25_URL_ELICITATION_REQUIRED = Requirement(
    "MCP 2025-11-25",
    "client/elicitation §URL Elicitation Required Error",
    "-32042 lists the URL mode elicitations to complete, each with its elicitationId",
)

# -- MCP 2026-07-28 ----------------------------------------------------------------------------
MCP_2026_07_28_APPLICATION_TYPE = Requirement(
    "MCP 2026-07-28", "authorization", "application_type is respected (OIDC Registration)"
)
MCP_2026_07_28_PARAM_HEADERS_MATCH = Requirement(
    "MCP 2026-07-28",
    "transports §Custom Headers from Tool Parameters",
    "x-mcp-header headers MUST match the body, else 400 HeaderMismatch (-32020)",
)
MCP_2026_07_28_MCP_NAME_MATCHES = Requirement(
    "MCP 2026-07-28", "transports", "Mcp-Name must match the body, else HeaderMismatch (-32020)"
)
MCP_2026_07_28_CLOSED_STREAM_CANCELS = Requirement(
    "MCP 2026-07-28",
    "transports §Cancellation",
    "closing the stream cancels the request; over stdio, notifications/cancelled",
)
MCP_2026_07_28_LISTEN_IS_SSE = Requirement("MCP 2026-07-28", "transports", "a listen response is an SSE stream")
MCP_2026_07_28_SUBSCRIPTIONS_ACK = Requirement(
    "MCP 2026-07-28", "subscriptions §Acknowledgment", "the first message, with the honored subset"
)
MCP_2026_07_28_SUBSCRIPTION_ID = Requirement(
    "MCP 2026-07-28", "subscriptions", "every notification carries the subscriptionId"
)
MCP_2026_07_28_ONLY_REQUESTED_TYPES = Requirement(
    "MCP 2026-07-28", "subscriptions", "the server MUST NOT send types the client did not request"
)
MCP_2026_07_28_SUBSCRIPTION_CANCEL = Requirement(
    "MCP 2026-07-28", "subscriptions §Cancellation", "closing the SSE stream ends the subscription"
)
MCP_2026_07_28_LISTEN_RESULT = Requirement(
    "MCP 2026-07-28", "schema", "SubscriptionsListenResult closes a stream gracefully"
)
MCP_2026_07_28_MRTR = Requirement("MCP 2026-07-28", "MRTR", "InputRequiredResult, requestState, inputResponses")
MCP_2026_07_28_MRTR_STATE_UNTRUSTED = Requirement(
    "MCP 2026-07-28", "MRTR", "requestState is untrusted input, verified before use"
)
MCP_2026_07_28_MRTR_STATE_BOUND = Requirement(
    "MCP 2026-07-28",
    "MRTR §Server Requirements",
    "a requestState that influences authorization is integrity-protected and bound to the principal, a short "
    "expiry and the originating request; any other is rejected",
)
MCP_2026_07_28_ELICITATION_MODE_DECLARED = Requirement(
    "MCP 2026-07-28",
    "client/elicitation §Capabilities",
    "servers MUST NOT send elicitation modes the client did not declare (an empty elicitation object is form only)",
)
MCP_2026_07_28_CACHE_SCOPE_PRIVATE = Requirement("MCP 2026-07-28", "caching", "a per-caller list is cacheScope private")

# -- OpenAI Apps SDK ---------------------------------------------------------------------------
OPENAI_APPS_WWW_AUTHENTICATE_META = Requirement(
    "OpenAI Apps SDK", "", "a tool error carries the challenge in _meta['mcp/www_authenticate']"
)

# -- authgate ----------------------------------------------------------------------------------
AUTHGATE_FILTER_NOT_BOUNDARY = Requirement(
    "authgate", "policy", "filtering is not the security boundary: a hidden tool is refused when called"
)
AUTHGATE_CACHED_KEYS_OUTLIVE_IDP = Requirement("authgate", "availability", "cached keys outlive an IdP outage")
ISSUE3_SAME_RESULTS = Requirement("authgate", "issue 3 done-when 1", "the same results through the gateway as direct")
ISSUE3_SSE_INCREMENTAL = Requirement("authgate", "issue 3 done-when 3", "SSE streaming is incremental")
ISSUE3_UPSTREAM_DOWN_502 = Requirement(
    "authgate", "issue 3 done-when 4", "upstream down is 502, and the gateway recovers when it returns"
)
ISSUE3_SILENT_UPSTREAM_504 = Requirement(
    "authgate", "issue 3 done-when 4", "a silent upstream with a 1 s timeout is 504, /health answers"
)
ISSUE3_SESSION_PER_IDENTITY = Requirement(
    "authgate", "issue 3 done-when 8", "a session opened by one identity is 404 for another"
)
ISSUE3_NO_FORGED_IDENTITY = Requirement(
    "authgate", "issue 3 done-when 8", "forged identity headers never reach the upstream"
)
ISSUE3_HEALTH_READY = Requirement("authgate", "issue 3", "/health/ready reports the upstream")
ISSUE3_UPSTREAM_401 = Requirement(
    "authgate", "issue 3", "a clear JSON-RPC error when the upstream refuses authgate's credential"
)
ISSUE3_SEPARATE_TIMEOUTS = Requirement(
    "authgate", "issue 3", "connect, first-byte and stream-idle timeouts are separate"
)
ISSUE11_REGISTRATION_BODY_413 = Requirement(
    "authgate", "issue 11 hole 4", "a registration body over the limit is 413 JSON before it is read"
)
ISSUE11_MCP_BODY_413 = Requirement(
    "authgate", "issue 11 hole 4", "/mcp bodies over mcp_max_body_bytes are 413, before authentication"
)
ISSUE11_NESTED_JSON_400 = Requirement(
    "authgate", "issue 11 hole 4", "32 000 nested brackets are a 400 JSON error, never a traceback"
)
ISSUE11_CIMD_ERROR_GENERIC = Requirement(
    "authgate", "issue 11 hole 8", "a CIMD fetch failure shows the browser no internal address or DNS answer"
)
ISSUE19_GATEWAY_STREAM_CUT_ERROR = Requirement(
    "authgate",
    "issue 19 done-when 5",
    "an HTTP upstream killed mid-stream: the SSE stream's last event is a JSON-RPC error naming the upstream",
)
ISSUE19_GATEWAY_JSON_CUT_502 = Requirement(
    "authgate", "issue 19 done-when 5", "an HTTP upstream killed mid-JSON-answer: 502 with a JSON-RPC error naming it"
)
ISSUE19_GATEWAY_IDLE_TIMEOUT_ERROR = Requirement(
    "authgate",
    "issue 19 done-when 5",
    "an SSE answer silent past upstream_idle_timeout ends with a JSON-RPC error event",
)
ISSUE19_GATEWAY_CALL_TIMEOUT = Requirement(
    "authgate",
    "issue 19 done-when 5",
    "an HTTP call past upstream_call_timeout: 504 or the stream's last event, and the upstream is told to cancel",
)
ISSUE19_GATEWAY_STREAM_TIMEOUT = Requirement(
    "authgate", "issue 19 done-when 5", "an endless GET stream ends cleanly at upstream_stream_timeout"
)
ISSUE19_GATEWAY_INVALID_ANSWER_502 = Requirement(
    "authgate",
    "issue 19 done-when 5",
    "an upstream 5xx, HTML, invalid JSON or wrong id is 502 with a JSON-RPC error naming the upstream",
)
ISSUE19_GATEWAY_CANCEL_ON_DISCONNECT = Requirement(
    "authgate", "issue 19 done-when 5", "a client that disconnects: the HTTP upstream gets notifications/cancelled"
)
ISSUE19_GATEWAY_LOG_OUTCOME = Requirement(
    "authgate", "issue 19", "the request log shows what the client got: status, and a stream ended with an error"
)
ISSUE19_STORE_UNAVAILABLE_503 = Requirement(
    "authgate",
    "issue 19 done-when 3",
    "a database that drops, refuses or stays locked is a 503 JSON (or HTML page) answer with Retry-After, "
    "never a text/plain 500 or a traceback, and the server recovers by itself",
)
ISSUE19_STORE_RETRY_IDEMPOTENT = Requirement(
    "authgate", "issue 19", "a lost connection is discarded; reads and idempotent writes retry once, others never"
)
ISSUE19_KILL_9_LOSES_NOTHING = Requirement(
    "authgate",
    "issue 19 done-when 4",
    "kill -9 of one of two replicas under load loses no registered client and no refresh token",
)
ISSUE19_DB_URL_MASKED = Requirement(
    "authgate", "issue 19 done-when 6", "a database URL's password is never printed: start-up errors, CLI, logs"
)

ISSUE19_SIGTERM_DRAIN = Requirement(
    "authgate",
    "issue 19 done-when 7",
    "SIGTERM with calls in flight: shorter calls finish, the rest get a JSON-RPC error, no traceback, exit 0",
)
ISSUE19_STDIO_CALL_TIMEOUT = Requirement(
    "authgate",
    "issue 19 done-when 5",
    "a stdio call past upstream_call_timeout gets a JSON-RPC error naming the program, the child a cancel",
)
ISSUE19_STDERR_BOUNDED = Requirement(
    "authgate", "issue 19 done-when 5", "a child's stderr flood reaches the log bounded; its calls still answer"
)
ISSUE19_HEADER_READ_TIMEOUT = Requirement(
    "authgate", "issue 19", "a connection that sends no whole request head within header_read_timeout is closed"
)
ISSUE19_CONNECTION_CAP = Requirement(
    "authgate", "issue 19", "past max_connections idle sockets make room; with every one busy a newcomer gets 503"
)
ISSUE19_STREAMS_PER_CALLER = Requirement(
    "authgate", "issue 19", "a caller's stream past max_streams_per_caller is 429; other callers' streams open"
)
ISSUE19_UPSTREAM_URL_MASKED = Requirement(
    "authgate", "issue 19", "an upstream URL's password or query secret never appears in output, logs or errors"
)
ISSUE19_GATEWAY_REUSED_CONNECTION_RETRY = Requirement(
    "authgate",
    "issue 19",
    "a kept-alive upstream connection reset as it is reused: safe requests go again on a fresh one, tools/call never",
)
ISSUE19_GATEWAY_UPSTREAM_503_RETRYABLE = Requirement(
    "authgate", "issue 19", "an upstream's 503 reaches the client as a retryable 503 with its Retry-After in seconds"
)

ISSUE18_AUDIT_NEVER_BLOCKS = Requirement(
    "authgate", "issue 18", "the audit queue is bounded: overflow is counted and logged, a request never waits for it"
)
ISSUE18_AUDIT_FLUSHED_ON_STOP = Requirement("authgate", "issue 18", "a clean stop writes every queued audit event")
ISSUE18_AUDIT_WRITER_SHARES_SQLITE = Requirement(
    "authgate", "issue 18", "the audit writer's own connection and the store's writes share one SQLite file unlocked"
)
ISSUE18_SQLITE_KILL_9_LOSES_NOTHING = Requirement(
    "authgate", "issue 18", "kill -9 of authgate on SQLite under load loses no answered client or refresh token"
)
ISSUE18_GATEWAY_STARTS_WITHOUT_SDK = Requirement(
    "authgate",
    "issue 18",
    "`authgate serve --upstream http://…` starts without importing the MCP SDK or the knowledge base",
)
ISSUE13_CLIENTS_LIST_SHOWS_CONNECTIONS = Requirement(
    "authgate",
    "issue 13",
    "`authgate clients list --json` shows each connected client (DCR, CIMD) with its registration kind, "
    "last use and live grants",
)
ISSUE13_CLIENT_REVOKE_ENDS_TOKENS = Requirement(
    "authgate",
    "issue 13",
    "`authgate clients revoke` fails the client's refresh tokens at once, its access tokens once "
    "token_cache_seconds has passed",
)
ISSUE13_PRUNE_DRY_RUN_EXACT = Requirement(
    "authgate",
    "issue 13",
    "`authgate clients prune --dry-run` lists exactly the clients a prune removes, removing none",
)
ISSUE13_GRANTS_FROM_THE_CLI = Requirement(
    "authgate", "issue 13", "`authgate grants list|revoke` lists and revokes grants by grant id, user or client"
)
ISSUE13_LISTINGS_JSON_AND_HEADERS = Requirement(
    "authgate", "issue 13", "every listing command prints a table with a header row, or JSON with --json"
)
ISSUE13_LISTINGS_SHOW_NO_SECRET = Requirement(
    "authgate",
    "issue 13",
    "no client secret, secret hash, token or token hash is printed by a clients or grants command",
)
ISSUE13_ADMIN_PAGE_REVOKES = Requirement(
    "authgate",
    "issue 13 done-when 2",
    "an admin signed in on /admin sees the clients and revokes one: its refresh token fails at once "
    "(invalid_grant), its access token once token_cache_seconds has passed",
)
ISSUE13_ADMIN_PAGE_ADMINS_ONLY = Requirement(
    "authgate",
    "issue 13 done-when 2",
    "/admin sends an anonymous visitor to sign in and back, and answers 403 to a signed-in user without the "
    "admin role, on every page and action",
)
ISSUE13_ADMIN_PAGE_CSRF = Requirement(
    "authgate", "issue 13 done-when 2", "every /admin action is a POST refused without the right CSRF token"
)
ISSUE13_ADMIN_PAGE_NO_FRAMING = Requirement(
    "authgate",
    "issue 13 done-when 2",
    "/admin's pages carry the sign-in pages' headers: CSP frame-ancestors 'none', X-Frame-Options DENY, no-store",
)
ISSUE13_ADMIN_PAGE_ESCAPED = Requirement(
    "authgate", "issue 13 done-when 2", "what a client names itself is shown on /admin as text, never as HTML"
)
ISSUE13_ADMIN_PAGE_EMBEDDED_ONLY = Requirement(
    "authgate", "issue 13 done-when 2", "/admin is served in the embedded mode only: a 404 in external and proxy mode"
)

ISSUE13_CONNECTION_TIMELINE = Requirement(
    "authgate",
    "issue 13",
    "every OAuth flow attempt is one story in the store: the client, the steps reached, the first failure "
    "with its reason and fix",
)
ISSUE13_ATTEMPTS_EXPLAIN_FAILURES = Requirement(
    "authgate",
    "issue 13",
    "a connection broken on purpose (wrong redirect URI, PKCE mismatch, missing scope, expired code) is "
    "listed by `authgate attempts --failed` with its failing step and reason, for every doctor profile",
)
ISSUE13_ATTEMPTS_NO_SECRET = Requirement(
    "authgate", "issue 13", "no attempt row holds a secret, code, token, password or code_verifier"
)
ISSUE13_ATTEMPTS_BOUNDED = Requirement(
    "authgate",
    "issue 13",
    "the attempts table keeps at most its cap of rows under a flood of failed attempts, and its rows age out",
)

ISSUE13_DOCTOR_OFFLINE_EXPLAINED = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "a server that cannot fetch a client's CIMD document fails that client at authorize naming the host and "
    "the fix (--cimd-host-map with a stand-in); the README says its sample used stand-ins",
)
ISSUE13_DOCTOR_TEXT_READABLE = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "the doctor's failure text keeps a page's sentences apart and is cut at a word boundary, marked with …",
)
ISSUE13_DOCTOR_URL_USAGE_ERROR = Requirement(
    "authgate", "issue 13 done-when 6", "`authgate doctor` with a URL that is not http(s) is a usage error (exit 2)"
)
ISSUE13_WHOAMI_OVER_STDIO = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "whoami in a stdio server behind `authgate serve -- …` reports the signed-in caller",
)
ISSUE13_BANNER_NAMES_UPSTREAM = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "the start banner names what authgate protects: the HTTP upstream (masked), the stdio program "
    "(without its arguments) or the built-in knowledge base",
)
ISSUE13_WHEEL_INSTALLS_AND_SERVES = Requirement(
    "authgate",
    "issue 13 done-when 7",
    "the built wheel and sdist hold every package file; the wheel installs into a fresh venv whose "
    "`authgate serve` answers /health and renders its pages",
)
ISSUE13_NO_PACKAGE_INDEX_INSTALL = Requirement(
    "authgate", "issue 13 done-when 7", "no document tells users to `pip install authgate` from a package index"
)

ISSUE13_CLI_PORT_IN_USE = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "a taken port stops `serve` before its banner and start-up: one line naming port / AUTHGATE_PORT, no traceback",
)
ISSUE13_CLI_PASSWORD_WITHOUT_TTY = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "users add / set-password check the user first; with no terminal they read --password-stdin or refuse in a line",
)
ISSUE13_CLI_DATA_DIR_UNUSABLE = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "a data_dir that cannot be created (a file, no permission) is one line naming --data-dir and the fix",
)
ISSUE13_CLI_LIST_SETTINGS = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "list and map settings work as flags: --upstream-command split like a shell, lists repeated or JSON, maps JSON",
)
ISSUE13_CLI_OWN_HELP = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "a subcommand's --help lists its own options (and the settings it uses); serve --help shows defaults",
)
ISSUE13_CLI_KB_ADD_REPORT = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "kb add says what was indexed, skipped and where; kb add/reindex show progress on a terminal only",
)
ISSUE13_FIRST_PASSWORD_ONE_TIME = Requirement(
    "authgate",
    "issue 13 done-when 6",
    "the first admin password file goes once the password is changed or first used to sign in",
)
ISSUE13_CLI_BAD_ARGUMENTS_EXIT_2 = Requirement(
    "authgate", "issue 13 done-when 6", "every subcommand given bad arguments exits 2 without a traceback"
)

ISSUE13_TRACES_GUARD_POLICY_UPSTREAM = Requirement(
    "authgate",
    "issue 13 done-when 5",
    "with the otel extra and otel_enabled, a tools/call through the HTTP gateway and through the stdio bridge "
    "each makes a server span with guard, policy and upstream spans; the upstream receives the upstream span's "
    "context (HTTP traceparent header; stdio params._meta.traceparent, in every protocol revision, SEP-414)",
)
ISSUE13_TRACES_CONTINUE_CLIENT_CONTEXT = Requirement(
    "authgate",
    "issue 13 done-when 5",
    "a client's valid traceparent is continued (same trace, its span the parent); a malformed one is "
    "ignored: a trace of authgate's own, and never passed on to the upstream",
)
ISSUE13_TRACES_OFF_IMPORTS_NOTHING = Requirement(
    "authgate", "issue 13 done-when 5", "with tracing off (the default) a started gateway has imported no OpenTelemetry"
)
ISSUE13_TRACES_EXPORTED_OVER_OTLP = Requirement(
    "authgate",
    "issue 13 done-when 5",
    "`authgate serve` with otel_enabled exports its spans over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, "
    "as service authgate",
)
ISSUE13_TRACES_NEED_THE_EXTRA = Requirement(
    "authgate",
    "issue 13 done-when 5",
    "otel_enabled without the otel extra is a one-line configuration error at start naming how to install it",
)

ISSUE13_METRICS_COUNT_TRAFFIC = Requirement(
    "authgate",
    "issue 13 done-when 4",
    "/metrics, scraped and parsed by prometheus_client after real traffic, shows the counters moving: requests "
    "by route and status, auth decisions, token verifications and cache hits, OAuth flow steps and failures, "
    "upstream latency (HTTP gateway and stdio) and errors, store latency, stdio children",
)
ISSUE13_METRICS_NOT_PUBLIC = Requirement(
    "authgate",
    "issue 13 done-when 4",
    "metrics are off by default and never public by accident: /metrics is 404 on the main listener unless "
    "metrics_on_main, which needs metrics_token (refused at start without it, 401 to anyone without it, an "
    "OAuth access token included); a metrics listener off loopback needs the token too",
)
ISSUE13_METRICS_BOUNDED_LABELS = Requirement(
    "authgate",
    "issue 13 done-when 4",
    "1 000 requests to random paths and random tool names (through /mcp) add no series: label values come "
    "from bounded sets (route templates, status codes, fixed reasons), never from a request",
)

ISSUE13_LISTINGS_READ_ONE_PAGE = Requirement(
    "authgate",
    "issue 13",
    "the admin page and `clients list` / `users list` read one page of clients or users from the store "
    "(newest first, a stable order) and a count, never the whole table (open registration makes it large); "
    "the per-client live-grant counts are counted for that page's clients only",
)

ISSUE15_URL_ELICITATION_ROUND_TRIP = Requirement(
    "authgate",
    "issue 15 done-when 2",
    "a tool that needs a third-party connection: the SDK client gets the URL elicitation at 2026-07-28 and at "
    "2025-11-25, the browser completes the connect page at the provider, the retried call succeeds",
)
ISSUE15_CONNECTION_ONE_REFRESH_ACROSS_REPLICAS = Requirement(
    "authgate",
    "issue 15",
    "a user's connection to a third-party provider, made through one replica, is seen by another (SQLite, "
    "PostgreSQL); its tokens and authgate's client secret are sealed at rest; concurrent callers on two "
    "replicas renewing a near-expiry token make one refresh at the provider; revoked through either, it is "
    "gone everywhere and its refresh token dead at the provider (RFC 7009)",
)
ISSUE15_CONNECT_PAGE = Requirement(
    "authgate",
    "issue 15",
    "the connect page: the person a link was made for signs in, continues to the provider (PKCE S256, state "
    "bound to the authgate session), the callback checks state and iss (RFC 9207), stores the connection sealed; "
    "the same callback again is refused; `authgate connections list/revoke` list and remove it",
)
ISSUE15_CONNECTIONS_ADMIN_PAGE = Requirement(
    "authgate",
    "issue 15",
    "the admin page lists users' connections to providers and revokes one (a CSRF-checked form, admins only)",
)
ISSUE15_CONNECT_ACROSS_REPLICAS = Requirement(
    "authgate",
    "issue 15",
    "two replicas on one PostgreSQL database behind one public URL: a connect begun on one (sign-in, "
    "Continue) completes on the other (the callback), and either lists and revokes the connection",
)
ISSUE15_CONNECT_PAGE_PROXY_MODE = Requirement(
    "authgate",
    "issue 15",
    "proxy mode: the connect page knows the person from their upstream sign-in in that browser and completes "
    "their link; a browser that never signed in is told to sign in through its app (no password form)",
)
ISSUE15_CONNECT_LINK_REFUSALS = Requirement(
    "authgate",
    "issue 15",
    "a connect link opened by another signed-in person is refused (403), a bearer token is no sign-in, a POST "
    "without the CSRF token is refused, the provider's answer delivered into another browser session is refused",
)
ISSUE15_CONNECTIONS_SURVIVE_RESTART = Requirement(
    "authgate",
    "issue 15",
    "a restart keeps the connections and authgate's registration at the provider: it never registers again",
)
ISSUE15_TOOL_ERROR_WITHOUT_URL_ELICITATION = Requirement(
    "authgate", "issue 15 done-when 2", "a client without elicitation.url gets a tool error naming the connect page"
)
ISSUE15_UPSTREAM_INPUT_REQUIRED_PASSES = Requirement(
    "authgate",
    "issue 15 done-when 2",
    "through the gateway, an upstream tool's own input_required round trip passes untouched beside authgate's",
)
ISSUE14_UPSTREAM_PASSES_BOTH_SETS = Requirement(
    "authgate",
    "issue 14 done-when 1",
    "MCP conformance 0.2.0-alpha.12: the conformance upstream passes every scored scenario of "
    "`--requirements 2025-11-25` and `--requirements 2026-07-28` directly (what it cannot pass is listed "
    "with the reason)",
)
ISSUE14_NO_CHECK_LOST_THROUGH_AUTHGATE = Requirement(
    "authgate",
    "issue 14 done-when 2",
    "no conformance check (both requirement sets and `--suite all`) is SUCCESS directly and anything else "
    "through `authgate serve --upstream` or the stdio bridge; a failure names the check and its message",
)
ISSUE14_GATEWAY_LEAVES_UPSTREAM_ANSWERS_TO_IT = Requirement(
    "authgate",
    "issue 14",
    "a gateway never answers for the upstream what only the upstream may answer: a request of a targeted "
    "method that names no target (`resources/subscribe` without a URI, removed at 2026-07-28) is passed on "
    "to a caller holding every scope of its kind, and the upstream's 404/-32601 or -32602 reaches the client",
)
ISSUE14_AUTHORIZATION_SUITE_PASSES = Requirement(
    "authgate",
    "issue 14 done-when 3",
    "`conformance authorization` (0.2.0-alpha.12) against the embedded AS — `--url` the issuer, a public "
    "client registered beforehand, `--resource` the MCP URL, sign-in and consent by the headless user agent — "
    "reports every check SUCCESS",
)
ISSUE14_BUILT_IN_PASSES_2026_SET = Requirement(
    "authgate",
    "issue 14 done-when 4",
    "the built-in knowledge-base server passes every 2026-07-28 conformance scenario that applies to a server of "
    "its kind (metadata, transport, caching, header validation, resource-not-found, stateless methods); the ones "
    "that do not apply are listed with the reason",
)
ISSUE14_BUILT_IN_ERROR_CODES = Requirement(
    "authgate",
    "issue 14",
    "the built-in server answers an unknown resource -32602 with data.uri at 2026-07-28 and -32002 at 2025-11-25, "
    "an unknown prompt -32602 at both, never -32603",
)
ISSUE14_DOCS_TABLE_FROM_THE_RUN = Requirement(
    "authgate",
    "issue 14 done-when 5",
    "docs/gateway.md's conformance table (scenario × direct, HTTP gateway, stdio bridge, built-in server) is "
    "written by the test from its run and checked against it",
)
MCP_2025_11_25_SSE_PRIMING_AND_RETRY = Requirement(
    "MCP 2025-11-25",
    "transports §Sending Messages 6",
    "a server that opens an SSE stream SHOULD first send an event id with empty data (priming), and SHOULD send "
    "a retry field before closing the connection of a stream it has not ended",
)
MCP_2025_11_25_EVENT_IDS_PER_STREAM = Requirement(
    "MCP 2025-11-25",
    "transports §Resumability and Redelivery",
    "event ids MUST be unique across all streams of the session and SHOULD name their stream; a resume MUST NOT "
    "replay messages of another stream",
)
MCP_2025_11_25_RESUME_WITH_LAST_EVENT_ID = Requirement(
    "MCP 2025-11-25",
    "transports §Resumability and Redelivery",
    "a GET with Last-Event-ID replays what the stream would have sent after that event, then resumes it; the "
    "server MUST NOT send a response on a GET stream unless resuming the stream of that request",
)
MCP_2025_11_25_DISCONNECT_IS_NOT_CANCELLATION = Requirement(
    "MCP 2025-11-25",
    "transports §Sending Messages 6",
    "disconnection SHOULD NOT be interpreted as the client cancelling its request (notifications/cancelled is)",
)
ISSUE14_STDIO_RESUME_BOUNDS = Requirement(
    "authgate",
    "issue 14 done-when 2",
    "the stdio bridge's resumable streams are bounded: a call whose connection closed and that no client resumes "
    "within resume_window is cancelled at the child and its events dropped; events per stream and answered "
    "streams per session are capped",
)


ISSUE16_JWKS_URI_THROUGH_SSRF_GUARD = Requirement(
    "authgate",
    "issue 16",
    "a client's jwks_uri is fetched through the CIMD fetcher's SSRF guard: one on a private address is "
    "never fetched and the client is refused (invalid_client)",
)
ISSUE16_CIMD_PRIVATE_KEY_JWT = Requirement(
    "authgate",
    "issue 16",
    "a CIMD client whose document declares private_key_jwt with a jwks_uri (ChatGPT's) authenticates "
    "with its signed assertion",
)
ISSUE16_DELETE_ENDS_GRANTS = Requirement(
    "authgate",
    "issue 16 done-when 5",
    "after an RFC 7592 delete the client's refresh token fails and its registration access token is gone",
)
ISSUE16_DOCTOR_LEAVES_NO_CLIENT = Requirement(
    "authgate",
    "issue 16 done-when 5",
    "the doctor deletes the clients it registered at authgate (RFC 7592), and says so where a server "
    "offers no registration management",
)
ISSUE16_OPERATOR_CLIENT_WITH_KEYS = Requirement(
    "authgate",
    "issue 16",
    "an operator-made client (`clients add --jwks/--jwks-uri`) authenticates with private_key_jwt and has no secret",
)


ISSUE17_IDP_CHECK_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "`authgate idp check --profile keycloak` against a real Keycloak passes the realm set up as seed 003 says and "
    "names each seed-003 trap of a broken realm (no audience mapper, default Trusted Hosts policy, a scope that "
    "is not a client scope, a wrong issuer shape) with the setting to change",
)
ISSUE17_SCOPES_EXIST_AT_IDP = Requirement(
    "authgate",
    "issue 17",
    "external mode checks that the scopes it advertises exist at the IdP (its scopes_supported): a warning at "
    "start naming the setting and the fix, and a failure in `idp check`",
)
ISSUE17_EXTERNAL_MODE_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "external mode in front of a real Keycloak: the mcp SDK client registers at the realm, signs in on "
    "Keycloak's own login page in a headless browser and calls tools through authgate; a token for another "
    "audience is refused 401, a token without a needed scope 403 insufficient_scope",
)
ISSUE17_PROXY_MODE_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "proxy mode with a real Keycloak as the upstream IdP (a pre-registered confidential client): the mcp SDK "
    "client signs in through authgate and Keycloak's login page; revoking the user's grant to authgate's "
    "client at Keycloak (its offline session) ends the authgate grant at the next refresh (invalid_grant)",
)
ISSUE17_KEYCLOAK_CIMD = Requirement(
    "authgate",
    "issue 17",
    "Keycloak's own CIMD (--features=cimd and its client policy): a client presenting its client ID metadata "
    "document URL (served over HTTPS by a test CA Keycloak trusts) signs in at Keycloak and its token is "
    "accepted by authgate in external mode",
)
ISSUE17_KEYCLOAK_REALM_ROLES = Requirement(
    "authgate",
    "issue 17",
    "per-tool access from a real Keycloak's realm roles (role_claim = realm_access.roles, `role_scopes`): "
    "a user holding the mapped role calls the tool, a token without it gets 403 insufficient_scope",
)
ISSUE17_DOCTOR_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "`authgate doctor` against authgate in front of a real Keycloak passes every client profile except where "
    "Keycloak itself refuses the client, each named (ChatGPT's CIMD document, the Inspector's CORS)",
)
ISSUE17_INSPECTOR_CLI_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "external mode in front of a real Keycloak: the MCP Inspector CLI registers at the realm, signs in on "
    "Keycloak's own login page in headless Chromium and calls a tool through `authgate serve` (Keycloak's CORS, "
    "which blocks the Inspector in a browser, does not reach the CLI: Node sends no preflight)",
)
ISSUE17_DOCTOR_PROXY_MODE_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "`authgate doctor` against authgate in proxy mode with a real Keycloak upstream passes every client profile "
    "(ChatGPT, Claude and Claude Code by CIMD from the offline stand-in), signing in through authgate's consent "
    "and Keycloak's login page",
)
ISSUE15_UPSTREAM_TOKEN_LIBRARY = Requirement(
    "authgate",
    "issue 15",
    "proxy mode, library mode: `authgate.upstream_token(ctx)` gives a tool the caller's own upstream IdP access "
    "token (two users never see each other's), renewed at the IdP when near expiry, one renewal for concurrent "
    "calls; a grant ended at the IdP is UpstreamGrantEnded and revokes the caller's authgate grant, an "
    "unreachable IdP is UpstreamTokenUnavailable",
)
ISSUE15_UPSTREAM_TOKEN_ONE_REFRESH_ACROSS_REPLICAS = Requirement(
    "authgate",
    "issue 15",
    "two replicas on one PostgreSQL database renewing one person's near-expiry upstream token at once make one "
    "refresh request at the IdP (counted there), and every call carries the renewed token",
)
ISSUE15_UPSTREAM_TOKEN_HEADER = Requirement(
    "authgate",
    "issue 15",
    "gateway mode, `upstream_token_header` (off by default): the upstream receives the caller's upstream IdP "
    "token in that header, once, never the token the client presented; a client's header of that name (or any "
    "X-Authgate-*) never reaches the upstream",
)
ISSUE15_UPSTREAM_TOKEN_HEADER_REFUSALS = Requirement(
    "authgate",
    "issue 15",
    "`upstream_token_header` is refused at start outside proxy mode, without an HTTP upstream, or on a header "
    "name authgate, the client or a proxy sets (Authorization, hop-by-hop, forwarding, Mcp-*), in one line",
)
ISSUE15_PROTECTED_UPSTREAM = Requirement(
    "authgate",
    "issue 15 done-when 3",
    "`serve --upstream` to an OAuth-protected MCP server (another authgate; DCR): each person connects their own "
    "account through the connect page and reaches the remote with their own token, never the client's or another "
    "person's (remote sessions per person); revoking makes the next call ask again; a machine client is refused; "
    "the registration and connections survive a restart",
)
ISSUE15_PROTECTED_UPSTREAM_STEP_UP = Requirement(
    "authgate",
    "issue 15 done-when 3",
    "a protected upstream's 403 insufficient_scope becomes a new connect link for the union of the scopes held and "
    "challenged; after it the retried call succeeds",
)
ISSUE15_PROTECTED_UPSTREAM_REFUSALS = Requirement(
    "authgate",
    "issue 15",
    "a protected upstream whose PRM names another resource, whose AS metadata names another issuer, or which "
    "advertises a private address is refused with a clear error to the MCP client, before any connect link",
)
ISSUE15_OUTBOUND_CONFORMANCE_CLIENT = Requirement(
    "authgate",
    "issue 15 done-when 5",
    "authgate's outbound OAuth client passes every auth/* client scenario of @modelcontextprotocol/conformance "
    "0.2.0-alpha.12's requirements/2026-07-28.yaml at each wire version the suite runs it at, and the two "
    "2025-03-26 back-compat scenarios (every check SUCCESS)",
)
ISSUE15_OUTBOUND_DISCOVERY = Requirement(
    "authgate",
    "issue 15",
    "the outbound client finds a remote's AS in the MCP spec's order (challenge PRM URL, path-inserted then root "
    "PRM; RFC 8414 path insertion, then OIDC both ways) and refuses AS metadata whose issuer is not the one its "
    "URL was built from and a PRM whose resource is not the server's",
)
ISSUE15_OUTBOUND_SSRF = Requirement(
    "authgate",
    "issue 15",
    "every URL a remote advertises is fetched through the CIMD fetcher's guard: plain http to a non-loopback host "
    "and a redirect to a private address are refused before any connection to them",
)
ISSUE15_OUTBOUND_REFRESH = Requirement(
    "authgate",
    "issue 15",
    "the outbound client registers by DCR, authorizes with PKCE S256 and the PRM's resource, and refreshes a "
    "token within its refresh margin with the same resource and client authentication; concurrent 401s share "
    "one authorization",
)
ISSUE15_WWW_AUTHENTICATE_PARSER = Requirement(
    "authgate",
    "issue 15 (RFC 9110 §11)",
    "one WWW-Authenticate parser: several challenges per field and over several fields, auth-params with BWS, "
    "quoted strings with escapes, token68, bounded input; the outbound client finds the Bearer challenge after a "
    "DPoP one; the doctor reads strictly and reports a malformed challenge",
)
ISSUE15_CIMD_DOCUMENT = Requirement(
    "authgate",
    "issue 15",
    "authgate serves its own Client ID Metadata Document at {public_url}/oauth/client-metadata.json (client_id = "
    "that URL, redirect URI the connect callback, auth none, cache headers) only for an https public_url; a "
    "CIMD authorization server (another authgate) fetches it over TLS from a test CA and issues a token to it",
)
ISSUE15_TOKEN_EXCHANGE = Requirement(
    "authgate",
    "issue 15 done-when 4",
    "RFC 8693: toward an AS listed in token_exchange_issuers, a provider marked token_exchange yields the "
    "person's token there by exchanging a short-lived JWT authgate signs for them (aud = that AS), no browser "
    "step, stored as a connection; toward an AS not listed, no request is sent and the person is asked to connect",
)
ISSUE17_SEED_003_REAL_KEYCLOAK = Requirement(
    "authgate",
    "issue 17",
    "docs/seeds/003-keycloak.md reproduced against a real Keycloak: the page's TOML, commands and validation "
    "playbook run as written, and each row of its failure-mode table is produced and named by authgate",
)
ISSUE17_STRICT_START = Requirement(
    "authgate",
    "issue 17",
    "`serve --strict` (setting `strict`): a start-up warning (an advertised scope the IdP does not define, an "
    "IdP unreachable at start, a plain-http public upstream) becomes a refusal: exit 2, one line naming the "
    "setting and the fix, no traceback",
)

RFC9449_5_DPOP_BOUND_TOKENS = Requirement(
    "RFC 9449",
    "§5, §6.1",
    "a token request with a valid DPoP proof gets token_type DPoP and an access token whose cnf.jkt is the "
    "proof key's RFC 7638 thumbprint; a public client's refresh token is bound to that key (a refresh with "
    "another key or none is refused); a client registered with dpop_bound_access_tokens must send a proof",
)
RFC9449_4_3_PROOF_CHECKS = Requirement(
    "RFC 9449",
    "§4.3, §11.1",
    "a DPoP proof is refused (invalid_dpop_proof) for another method or URL (htu compared after RFC 3986 "
    "normalization, without query), an iat outside the window, a replayed jti, alg none or a MAC, or a "
    "private key in its jwk",
)
RFC9449_7_RESOURCE_ACCESS = Requirement(
    "RFC 9449",
    "§7.1, §7.2",
    "/mcp accepts a DPoP-bound token only as Authorization: DPoP with a proof whose ath is the token's hash "
    "and whose key is the token's cnf.jkt; the token sent as Bearer, without a proof, or with another key is "
    "refused with a DPoP challenge that keeps resource_metadata",
)
RFC9449_8_NONCE = Requirement(
    "RFC 9449",
    "§8, §9",
    "with server nonces on, a proof without the current nonce is answered use_dpop_nonce with a DPoP-Nonce "
    "header, at the token endpoint (400) and at /mcp (401), and the retry with that nonce succeeds",
)
ISSUE16_DPOP_SETTINGS = Requirement(
    "authgate",
    "issue 16",
    "dpop_required refuses Bearer tokens at /mcp and proof-less token requests, and PRM says "
    "dpop_bound_access_tokens_required; AS metadata and PRM list dpop_signing_alg_values_supported",
)

ISSUE16_ID_JAG_SDK_EXCHANGE = Requirement(
    "authgate",
    "issue 16 done-when 3",
    "a confidential client made with `clients add --grant jwt-bearer` exchanges an ID-JAG from a trusted "
    "enterprise IdP (the mcp SDK's IdentityAssertionOAuthProvider) and calls a tool as the user linked by (iss, sub)",
)
ISSUE16_ID_JAG_REFUSALS = Requirement(
    "authgate",
    "issue 16 done-when 3",
    "an ID-JAG with the wrong aud or resource, a scope beyond the assertion, a replayed jti, expired, from an "
    "untrusted issuer, naming another client, or from a public client is refused (invalid_grant, invalid_scope, "
    "unauthorized_client); open registration cannot ask for the jwt-bearer grant",
)
ISSUE16_ID_JAG_DRAFT_RULES = Requirement(
    "authgate",
    "issue 16 (ID-JAG draft §3.1, §6.3, §8.6.1.2)",
    "an ID-JAG without iat is refused (invalid_grant); one bound to a key (cnf.jkt) is honoured only with a "
    "DPoP proof by that key, else invalid_grant; a tenant claim scopes the subject (iss+tenant+sub); "
    "authorization_details (RFC 9396, not implemented) is invalid_grant rather than ignored",
)
ISSUE16_ID_JAG_METADATA = Requirement(
    "authgate",
    "issue 16",
    "with trusted enterprise IdPs configured, AS metadata lists the jwt-bearer grant and "
    "authorization_grant_profiles_supported [urn:ietf:params:oauth:grant-profile:id-jag]",
)
ISSUE16_WORKLOAD_JWT_BEARER = Requirement(
    "authgate",
    "issue 16",
    "a workload assertion (RFC 7523 §2.1) from a configured workload issuer gets the operator-approved machine "
    "client its subject is mapped to a token; its jti is single use; a wrong aud or an unmapped sub is invalid_grant",
)
ISSUE16_JWT_BEARER_KINDS_APART = Requirement(
    "authgate",
    "issue 16 done-when 3",
    "a workload assertion is refused at the ID-JAG path and an ID-JAG at the workload path: an ID-JAG issuer's "
    "assertion is never a workload assertion, nor the reverse",
)
ISSUE16_ID_JAG_USER_LINKING = Requirement(
    "authgate",
    "issue 16",
    "an ID-JAG's subject is the local user ISSUER|SUB (provisioned when allowed), by verified email only where "
    "the IdP's email_mapping is on, and the grant is narrowed to what that user's roles may grant",
)
ISSUE16_IDP_CHECK_ID_JAG = Requirement(
    "authgate",
    "issue 16",
    "`authgate idp check --id-jag` warns about an IdP whose metadata does not list the ID-JAG token type in "
    "identity_chaining_requested_token_types_supported, and prints the enterprise_idps line to trust it",
)

REGISTRY: dict[str, Requirement] = {name: value for name, value in globals().items() if isinstance(value, Requirement)}


def name_of(value: object) -> str | None:
    """The constant's name when value is one of the registry's constants (the object itself: an
    equal Requirement built elsewhere is not registered)."""
    return next((name for name, known in REGISTRY.items() if known is value), None)


def tag_problems(items: Iterable[pytest.Item]) -> list[str]:
    """One line per `requirement` mark that is not exactly one registry constant."""
    problems = []
    for item in items:
        for mark in item.iter_markers("requirement"):
            if len(mark.args) != 1 or mark.kwargs or name_of(mark.args[0]) is None:
                given = ", ".join([*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())])
                problems.append(
                    f"{item.nodeid}: requirement({given}) is not one constant of tests/support/requirements.py"
                )
    return problems
