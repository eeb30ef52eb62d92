"""The HTTP routes of the authorization server: thin Starlette adapters over the OAuth core.

authorize.py   GET /authorize, POST /login, POST /consent: the browser leg of the code flow
endpoints.py   back-channel endpoints: /token, /register, /revoke (JSON in/out, no cookies)
discovery.py   discovery documents, JWKS and health checks
proxy_mode.py  proxy mode's browser leg (auth_mode = "proxy"): consent, then the upstream IdP
admin.py       /admin, the operator's page (embedded mode), and admin_rows.py, what it shows of each value
"""
