"""A TEST STAND-IN for an enterprise IdP that issues ID-JAGs and for a workload issuer (e.g.
Kubernetes): real EC keys (joserfc), JWK Sets served by a loopback Starlette app over a real
socket. Not a real IdP: it only signs what a test asks for, with the claims of
draft-ietf-oauth-identity-assertion-authz-grant-04 §3 (ID-JAG) and RFC 7523 §3 (workload)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.authgate_server import AuthgateServer

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_TYP = "oauth-id-jag+jwt"
SERVICE_ACCOUNT = "system:serviceaccount:ci:runner"


class IssuerStandIn:
    """TEST STAND-IN for an enterprise IdP (issuer BASE, keys at /jwks) and a workload issuer
    (issuer BASE/k8s, keys at /k8s/jwks): real keys, real socket, not a real IdP."""

    def __init__(self) -> None:
        self.base = ""
        self.idp_key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})
        self.k8s_key = ECKey.generate_key("P-256", parameters={"kid": "k8s-1"})

    @property
    def workload_issuer(self) -> str:
        return f"{self.base}/k8s"

    def app(self) -> Starlette:
        def keys(key: ECKey) -> Any:
            async def serve(_: Request) -> JSONResponse:
                return JSONResponse({"keys": [key.as_dict(private=False)]}, headers={"Cache-Control": "max-age=60"})

            return serve

        return Starlette(routes=[Route("/jwks", keys(self.idp_key)), Route("/k8s/jwks", keys(self.k8s_key))])

    def sign(self, claims: dict[str, Any], *, key: ECKey | None = None, typ: str = ID_JAG_TYP) -> str:
        key = key or self.idp_key
        return jwt.encode({"alg": "ES256", "typ": typ, "kid": key.kid}, claims, key)

    def id_jag(self, server: AuthgateServer, client_id: str, **changes: Any) -> str:
        """An ID-JAG as the draft's §3 shapes it; `changes` replace claims (None removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.base,
            "sub": "employee-1",
            "aud": server.issuer,
            "client_id": client_id,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + 300,
            "resource": server.mcp_url,
            "scope": "mcp",
            "email": "employee-1@corp.example",
        }
        claims.update(changes)
        return self.sign({k: v for k, v in claims.items() if v is not None})

    def workload(self, server: AuthgateServer, **changes: Any) -> str:
        """A Kubernetes-style service-account token (typ JWT) for authgate's issuer."""
        now = int(time.time())
        claims = {"iss": self.workload_issuer, "sub": SERVICE_ACCOUNT, "aud": server.issuer}
        claims.update({"jti": secrets.token_urlsafe(12), "iat": now, "exp": now + 300, **changes})
        return self.sign(claims, key=self.k8s_key, typ="JWT")
