"""Two authgate replicas on one PostgreSQL database (issue 16): one ID-JAG sent to both at the
same moment is exchanged once; every other copy is `invalid_grant` ("already used"), whichever
replica it reached (the jti is single use per IdP in the store's used_jtis). The enterprise IdP is
the test stand-in of tests/support/enterprise_idp.py (real keys, real socket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.enterprise_idp import JWT_BEARER, IssuerStandIn
from support.pg import fresh_database
from support.replicas import two_replicas

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_idjag_race") as url:
        yield url


@pytest.fixture
def stand_in() -> Iterator[IssuerStandIn]:
    issuers = IssuerStandIn()
    with serve_asgi_in_thread(issuers.app()) as base:
        issuers.base = base
        yield issuers


@pytest.fixture
def replicas(
    database: sa.URL, tmp_path: Path, stand_in: IssuerStandIn
) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    with two_replicas(
        database,
        tmp_path,
        AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP="true",
        AUTHGATE_ENTERPRISE_IDPS=json.dumps({stand_in.base: {"jwks_uri": f"{stand_in.base}/jwks"}}),
    ) as pair:
        yield pair


@pytest.mark.requirement(req.ISSUE16_ID_JAG_REFUSALS)
async def test_one_id_jag_sent_to_two_replicas_at_once_is_exchanged_once(
    replicas: tuple[AuthgateServer, AuthgateServer], stand_in: IssuerStandIn
) -> None:
    first, _ = replicas
    done = first.cli("clients", "add", "enterprise-app", "--grant", "jwt-bearer", "--scopes", "mcp")
    assert done.returncode == 0, done.stderr
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    client = {"client_id": fields["client_id"], "client_secret": fields["client_secret"]}
    for _round in range(3):  # a fresh ID-JAG each round, eight copies of it at once
        assertion = stand_in.id_jag(first, client["client_id"])
        form = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": first.mcp_url, **client}
        async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=8)) as http:
            answers = await asyncio.gather(*(http.post(replicas[i % 2].endpoint("token"), data=form) for i in range(8)))
        assert sorted(a.status_code for a in answers) == [200] + [400] * 7, [a.text for a in answers]
        refused = [a.json() for a in answers if a.status_code == 400]
        assert all(r["error"] == "invalid_grant" and "already used" in r["error_description"] for r in refused)
