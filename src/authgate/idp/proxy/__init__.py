"""Proxy mode (`auth_mode = "proxy"`): authgate stays the authorization server to MCP clients
and signs people in at an upstream IdP without DCR (GitHub, Google, Entra, any OIDC/OAuth 2
server) with its own single client. See docs/idp/proxy.md.

presets.py       what authgate knows of each upstream IdP (`UpstreamIdp`), endpoints resolved
upstream_idp.py  authgate as the upstream IdP's client; `UpstreamIdpError` and its kinds
identity.py      who signed in upstream (`UpstreamIdentity`), and the allow-lists
vault.py         upstream tokens at rest, sealed; renewed with the upstream refresh token
grant_check.py   before an authgate refresh rotates, the upstream grant must still stand
"""
