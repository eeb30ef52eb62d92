"""Settings, one module per section, composed into the one `Settings` object.

    settings.py      `Settings` (every section), the cross-field rules, `load_settings`
    problems.py      a refused setting (`Refusal`), and fixes read off a field's constraints
    server.py        listening address, public URL, data dir, database, the HTTP edge
    tokens.py        token and code lifetimes, the scopes offered
    signin.py        sign-in sessions and rate limits, password checks, what roles may grant
    registration.py  dynamic client registration and Client ID Metadata Documents
    policy.py        scopes per tool, resource and prompt; roles; anonymous operations
    gateway.py       the upstream MCP server (HTTP or stdio)
    logs.py          log level and format
    external.py      external mode: the IdP that issues the tokens
    proxy.py         proxy mode: the upstream IdP people sign in at
    issuers.py       issuer / IdP endpoint URL checks per profile, accepted JWS algorithms
    urls.py          the canonical public URL and every URL derived from it

config/ imports only errors and itself: the rest of authgate imports config, never the reverse.
"""
