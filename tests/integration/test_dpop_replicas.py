"""Two authgate replicas on one PostgreSQL database (issue 16 done-when 1): a DPoP proof sent to
both at the same moment is accepted once, whichever replica it reached (the `jti` replay cache
is the store's `used_jtis`); a server nonce one replica hands out is accepted by the other (the
nonce key is derived from the shared `secret_key`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.dpop import DpopKey
from support.flow_load import INITIALIZE, MCP_HEADERS
from support.pg import fresh_database
from support.replicas import two_replicas

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_dpop_replicas") as url:
        yield url


@pytest.fixture
def replicas(database: sa.URL, tmp_path: Path) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    with two_replicas(database, tmp_path, AUTHGATE_DPOP_NONCE="true") as pair:
        yield pair


def _bound_token(first: AuthgateServer, second: AuthgateServer, key: DpopKey) -> str:
    """A machine client's DPoP-bound token: the nonce from one replica, the token from the other."""
    client_id, secret = first.add_machine_client("dpop-replicas", "mcp")
    form = {"grant_type": "client_credentials", "resource": first.mcp_url}
    url = first.endpoint("token")  # the public URL of both
    asked = httpx.post(url, data=form, auth=(client_id, secret), headers={"DPoP": key.proof("POST", url)}, timeout=15)
    assert asked.status_code == 400 and asked.json()["error"] == "use_dpop_nonce", asked.text
    nonce = asked.headers["dpop-nonce"]
    proof = key.proof("POST", url, nonce=nonce)
    r = httpx.post(second.endpoint("token"), data=form, auth=(client_id, secret), headers={"DPoP": proof}, timeout=15)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.requirement(req.RFC9449_8_NONCE)
async def test_one_proof_sent_to_two_replicas_at_once_is_accepted_once(
    replicas: tuple[AuthgateServer, AuthgateServer],
) -> None:
    first, second = replicas
    key = DpopKey()
    token = await asyncio.to_thread(_bound_token, first, second, key)
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=8)) as http:
        auth = {**MCP_HEADERS, "Authorization": f"DPoP {token}"}
        first_try = await http.post(
            second.mcp_url, json=INITIALIZE, headers={**auth, "DPoP": key.proof("POST", first.mcp_url, token=token)}
        )
        assert first_try.status_code == 401 and first_try.json()["error"] == "use_dpop_nonce", first_try.text
        nonce = first_try.headers["dpop-nonce"]
        for _ in range(3):  # a fresh jti each round, eight copies of its proof at once
            proof = key.proof("POST", first.mcp_url, token=token, nonce=nonce)
            answers = await asyncio.gather(
                *(
                    http.post(f"{replicas[i % 2].url}/mcp", json=INITIALIZE, headers={**auth, "DPoP": proof})
                    for i in range(8)
                )
            )
            assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text for a in answers]
            refused = [a.json() for a in answers if a.status_code == 401]
            assert all(r["error"] == "invalid_dpop_proof" and "jti" in r["error_description"] for r in refused)
