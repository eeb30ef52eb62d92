"""External identity providers: the IdP issues the access tokens, authgate guards /mcp.

profiles.py       each IdP's quirks (claims, traps) and the setting that fixes each; issuer
                  shapes per profile are checked in config/issuers.py
discovery.py      OIDC discovery / RFC 8414 documents
jwks.py           the IdP's signing keys, cached; refetched on an unknown `kid` (rate-limited)
claims.py         the checks every access token passes, JWT or introspected
verifier.py       `ExternalJwtVerifier`: the guard's `TokenVerifier` for RFC 9068 JWTs
introspection.py  RFC 7662 for IdPs that issue opaque tokens
mirror.py         opt-in: the IdP's metadata served as authgate's own RFC 8414 document
backend.py        external mode assembled: HTTP client, verifier, routes
check/            `authgate idp check`: a preflight that names each problem and its fix
proxy/            proxy mode (`auth_mode = "proxy"`): authgate stays the authorization server
                  and signs people in at the upstream IdP with its own client
"""
