"""Two authgate replicas on one PostgreSQL database: one authorization code redeemed at the same
moment on both (issue 19). Exactly one exchange succeeds, and whatever the order the replays
arrive in, the tokens it issued are refused afterwards on both replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from test_negative_cases import CALLBACK, call_mcp, get_code, pkce_pair, register

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.pg import fresh_database
from support.replicas import two_replicas

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_code_race") as url:
        yield url


@pytest.fixture
def replicas(database: sa.URL, tmp_path: Path) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    with two_replicas(database, tmp_path, add_user=True) as pair:
        yield pair


async def _redeem_on_both(
    replicas: tuple[AuthgateServer, AuthgateServer], form: dict[str, str], at_once: int
) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=at_once)) as http:
        posts = (http.post(replicas[i % 2].endpoint("token"), data=form) for i in range(at_once))
        return list(await asyncio.gather(*posts))


@pytest.mark.requirement(req.OAUTH21_4_1_3_CODE_REPLAY_REVOKES)
def test_a_code_redeemed_on_two_replicas_at_once_issues_once_and_is_revoked(
    replicas: tuple[AuthgateServer, AuthgateServer],
) -> None:
    first, _ = replicas
    client: dict[str, Any] = register(first)
    # 2 at once is the race once lost (the replay before the winner's first token); 20 is load
    for at_once in [2] * 5 + [20] * 5:
        verifier, challenge = pkce_pair()
        form = {
            "grant_type": "authorization_code",
            "code": get_code(first, client["client_id"], challenge),
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
            "client_id": client["client_id"],
        }
        answers = asyncio.run(_redeem_on_both(replicas, form, at_once))
        won = [r for r in answers if r.status_code == 200]
        assert len(won) == 1, [r.text for r in answers]
        assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant" for r in answers if r not in won)
        issued = won[0].json()
        for replica in replicas:  # each saw a replay; neither has the access token cached
            refresh = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
            refreshed = httpx.post(replica.endpoint("token"), data={**refresh, "client_id": client["client_id"]})
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
            r = call_mcp(replica, issued["access_token"])
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
