"""Two authgate replicas on one PostgreSQL database (issue 16): a `private_key_jwt` assertion
sent to both at the same moment authenticates once; every other copy is `invalid_client`
("already used"), whichever replica it reached. RFC 7009 revocation authenticates the client
and changes no grant, so only the `jti` decides."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.pg import fresh_database
from support.replicas import two_replicas

pytestmark = pytest.mark.postgres

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_jti_race") as url:
        yield url


@pytest.fixture
def replicas(database: sa.URL, tmp_path: Path) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    with two_replicas(database, tmp_path) as pair:
        yield pair


@pytest.mark.requirement(req.RFC7523_3_JTI_SINGLE_USE)
async def test_one_assertion_sent_to_two_replicas_at_once_authenticates_once(
    replicas: tuple[AuthgateServer, AuthgateServer],
) -> None:
    first, _ = replicas
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    body = {
        "client_name": "keyed",
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
    }
    registered = httpx.post(first.endpoint("register"), json=body, timeout=15)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    for attempt in range(3):  # a fresh jti each round, eight copies of it at once
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": first.issuer, "exp": now + 60, "jti": f"j{attempt}"}
        signed = jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key, algorithms=["ES256"])
        form = {"token": "not-a-token", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
        async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=8)) as http:
            answers = await asyncio.gather(
                *(http.post(replicas[i % 2].endpoint("revoke"), data=form) for i in range(8))
            )
        assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text for a in answers]
        refused = [a.json() for a in answers if a.status_code == 401]
        assert all(r["error"] == "invalid_client" and "already used" in r["error_description"] for r in refused)
