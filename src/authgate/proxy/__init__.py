"""Proxy mode (`auth_mode = "proxy"`): authgate stays the authorization server to MCP clients
and signs people in at an upstream IdP without DCR (GitHub, Google, Entra, any OIDC/OAuth 2
server) with its own single client. See docs/idp/proxy.md."""
