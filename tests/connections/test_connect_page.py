"""The connect page through real processes: `authgate serve` (embedded mode, SQLite) with a
provider configured, npm oidc-provider as that provider, a headless browser for the person.
A link made for alice is completed by alice (sign in, Continue, the provider, the callback);
every other way in is refused: another signed-in person, another browser's callback, a forged,
used or expired state or link, an open redirect through the callback, oversized inputs, a form
without its CSRF token. `authgate connections list/revoke` read and remove what it stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from authgate.connections import ConnectionBroker, ProviderConfig
from authgate.errors import ConnectionRequired
from authgate.store.models import ConnectRequest
from authgate.store.sql import sql_stores
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page
from support.idp_peers import IdpUserAgent, OidcProvider, ProviderShape, require_oidc_provider
from support.pg import fresh_database
from support.ports import free_port
from support.replicas import two_replicas

SECRET = "connect-page-secret-" + "s" * 32
BOB_PASSWORD = "bob-password-" + "b" * 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, OidcProvider, str]]:
    require_oidc_provider()
    provider = OidcProvider(tmp_path_factory.mktemp("provider"), ProviderShape(port=free_port(), default_resource=None))
    provider.start()
    workdir = tmp_path_factory.mktemp("authgate")
    database_url = f"sqlite+aiosqlite:///{workdir / 'authgate.db'}"
    providers = {"idp": {"issuer": provider.issuer, "title": "Test IdP", "scopes": ["openid", "profile"]}}
    server = AuthgateServer(
        workdir,
        extra_env={
            "AUTHGATE_SECRET_KEY": SECRET,
            "AUTHGATE_DATABASE_URL": database_url,
            "AUTHGATE_CONNECTION_PROVIDERS": json.dumps(providers),
            "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",
        },
    )
    server.add_user()
    done = server.cli("users", "add", "bob", "--password-stdin", stdin=BOB_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    server.start()
    try:
        yield server, provider, database_url
    finally:
        server.stop()
        provider.stop()


def _link(
    server: AuthgateServer, provider: OidcProvider, database_url: str, user: str = "alice", secret: str = SECRET
) -> str:
    """A connect link for `user`, as `broker.require` makes it when a tool needs the provider."""

    async def make() -> str:
        stores = sql_stores(database_url)
        await stores.open()
        users = await stores.users.get_user_by_name(user)
        assert users is not None
        broker = ConnectionBroker(
            {"idp": ProviderConfig("idp", issuer=provider.issuer)},
            stores.connections,
            secret.encode(),
            public_url=server.url,
        )
        try:
            await broker.require(users.user_id, "client-1", "idp")
        except ConnectionRequired as asked:
            return asked.url
        finally:
            await broker.aclose()
            await stores.close()
        raise AssertionError("already connected")

    return asyncio.run(make())


def _signed_in_continue(
    agent: HeadlessUserAgent, link: str, username: str, password: str
) -> Page | AuthorizationResponse:
    page = agent.open(link)
    assert isinstance(page, Page) and page.status == 200 and page.login_form is not None, page
    page = agent.submit(page.login_form, username=username, password=password)
    assert isinstance(page, Page), page
    if page.status != 200:
        return page
    form = page.consent_form
    assert form is not None and "Test IdP" in page.text, page.text
    return agent.submit(form, decision="connect")


def _to_provider(agent: HeadlessUserAgent, link: str, server: AuthgateServer) -> dict[str, str]:
    """Alice signs in, continues, and the provider answers: the callback's query (not sent yet)."""
    leaving = _signed_in_continue(agent, link, server.username, server.password)
    assert isinstance(leaving, AuthorizationResponse) and leaving.status == 303, leaving
    idp = IdpUserAgent("alice-at-idp")
    try:
        return idp.authorize(leaving.location)
    finally:
        idp.close()


@pytest.mark.requirement(req.ISSUE15_CONNECT_PAGE)
def test_the_person_the_link_was_made_for_connects(setup: tuple[AuthgateServer, OidcProvider, str]) -> None:
    server, provider, database_url = setup
    with HeadlessUserAgent() as agent:
        link = _link(server, provider, database_url)
        params = _to_provider(agent, link, server)
        assert params.get("iss") == provider.issuer and "code" in params  # RFC 9207
        done = agent.http.get(f"{server.url}/connect/callback?{urlencode(params)}")
        assert done.status_code == 200 and "Connected to" in done.text, done.text
        used = agent.http.get(link)  # the link itself is spent too
        assert used.status_code == 404 and "already used" in used.text
        # the same answer again: the state is spent
        again = agent.http.get(f"{server.url}/connect/callback?{urlencode(params)}")
        assert again.status_code == 400 and "already used" in again.text
    listed = server.cli("connections", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["user"], r["provider"], r["refreshable"]) for r in rows] == [("alice", "idp", True)]
    assert "access_token" not in listed.stdout
    assert server.cli("connections", "revoke", "--user", "alice", "--provider", "idp").returncode == 0
    assert server.cli("connections", "list", "--json").stdout.strip() == ""
    gone = server.cli("connections", "revoke", "--user", "alice", "--provider", "idp")
    assert gone.returncode == 1 and "no connection" in gone.stderr


@pytest.mark.requirement(req.ISSUE15_CONNECTIONS_ADMIN_PAGE)
def test_the_admin_page_lists_and_revokes_connections(setup: tuple[AuthgateServer, OidcProvider, str]) -> None:
    server, provider, database_url = setup
    with HeadlessUserAgent() as agent:  # alice, the first user, is an admin
        params = _to_provider(agent, _link(server, provider, database_url), server)
        assert agent.http.get(f"{server.url}/connect/callback?{urlencode(params)}").status_code == 200
        page = agent.open(f"{server.url}/admin")
        assert isinstance(page, Page) and page.status == 200 and "Connections to providers" in page.text
        form = page.form_posting_to("/admin/connections/revoke")
        assert form is not None and form.fields["connection"].startswith("idp:")
        done = agent.submit(form)
        assert isinstance(done, Page) and "Revoked the connection" in done.text, done.text
        assert done.form_posting_to("/admin/connections/revoke") is None
    assert server.cli("connections", "list", "--json").stdout.strip() == ""


@pytest.mark.requirement(req.ISSUE15_CONNECT_LINK_REFUSALS)
def test_a_link_is_refused_to_anyone_else(setup: tuple[AuthgateServer, OidcProvider, str]) -> None:
    server, provider, database_url = setup
    link = _link(server, provider, database_url)
    # another signed-in person: 403, nothing started at the provider
    with HeadlessUserAgent() as bob:
        refused = _signed_in_continue(bob, link, "bob", BOB_PASSWORD)
        assert isinstance(refused, Page) and refused.status == 403 and "another person" in refused.text
    # a client's bearer token is not a sign-in: the sign-in form
    anonymous = httpx.get(link, headers={"Authorization": "Bearer anything"}, timeout=10)
    assert anonymous.status_code == 200 and 'name="password"' in anonymous.text
    # a POST without the CSRF token
    forged = httpx.post(link, data={"decision": "connect"}, timeout=10)
    assert forged.status_code == 403
    # the provider's answer delivered into another browser (or none): 403, and the state spent
    with HeadlessUserAgent() as alice:
        params = _to_provider(alice, link, server)
    elsewhere = httpx.get(f"{server.url}/connect/callback?{urlencode(params)}", timeout=10)
    assert elsewhere.status_code == 403 and "another browser" in elsewhere.text
    assert "location" not in elsewhere.headers


def test_forged_expired_oversized_and_redirecting_inputs_are_refused(
    setup: tuple[AuthgateServer, OidcProvider, str],
) -> None:
    server, provider, database_url = setup
    base = f"{server.url}/connect"
    answers = {
        "forged state": httpx.get(f"{base}/callback?state=forged&code=x", timeout=10),
        "no state": httpx.get(f"{base}/callback?code=x", timeout=10),
        "open redirect": httpx.get(
            f"{base}/callback?" + urlencode({"state": "s", "redirect_uri": "https://evil.example/", "next": "//evil"}),
            timeout=10,
        ),
        "oversized query": httpx.get(f"{base}/callback?state={'a' * 9000}", timeout=10),
        "unknown link": httpx.get(f"{base}/{'A' * 22}", timeout=10),
        "oversized link": httpx.get(f"{base}/{'A' * 3000}", timeout=10),
        "odd link": httpx.get(f"{base}/..%2f..%2fadmin", timeout=10),
    }
    for what, r in answers.items():
        assert r.status_code in (400, 403, 404, 414, 431), (what, r.status_code)
        assert "location" not in r.headers, what
    # an expired link: 404 before any sign-in
    link = _link(server, provider, database_url)
    eid = link.rsplit("/", 1)[1]

    async def expire() -> None:
        stores = sql_stores(database_url)
        await stores.open()
        try:
            found = await stores.connections.get_connect_request(eid)
            assert found is not None
            await stores.connections.purge_connect_requests(found.expires_at + 1)
            await stores.connections.add_connect_request(
                ConnectRequest(eid, found.user_id, "c", "idp", (), found.created_at - 2000, found.created_at - 1000)
            )
        finally:
            await stores.close()

    asyncio.run(expire())
    expired = httpx.get(link, timeout=10)
    assert expired.status_code == 404 and "expired" in expired.text


def test_removing_a_person_removes_their_connections(setup: tuple[AuthgateServer, OidcProvider, str]) -> None:
    # `authgate users remove` deletes what was stored for the person (and asks the providers to
    # revoke their tokens: the broker's revoke, tested in tests/connections):
    # nothing sealed to a removed person is kept behind
    server, provider, database_url = setup
    password = "dave-password-" + "d" * 12
    assert server.cli("users", "add", "dave", "--password-stdin", stdin=password + "\n").returncode == 0
    with HeadlessUserAgent() as agent:
        leaving = _signed_in_continue(agent, _link(server, provider, database_url, user="dave"), "dave", password)
        assert isinstance(leaving, AuthorizationResponse) and leaving.status == 303, leaving
        idp = IdpUserAgent("dave-at-idp")
        try:
            params = idp.authorize(leaving.location)
        finally:
            idp.close()
        assert agent.http.get(f"{server.url}/connect/callback?{urlencode(params)}").status_code == 200
    listed = [
        json.loads(line) for line in server.cli("connections", "list", "--user", "dave", "--json").stdout.splitlines()
    ]
    assert [row["provider"] for row in listed] == ["idp"]
    dave_id = listed[0]["user_id"]
    removed = server.cli("users", "remove", "dave")
    assert removed.returncode == 0, removed.stderr

    async def rows_of_dave() -> int:
        stores = sql_stores(database_url)
        await stores.open()
        try:
            return len(await stores.connections.list_connections(dave_id))
        finally:
            await stores.close()

    assert asyncio.run(rows_of_dave()) == 0


@pytest.mark.postgres
@pytest.mark.requirement(req.ISSUE15_CONNECT_ACROSS_REPLICAS)
def test_a_connect_begun_on_one_replica_completes_on_the_other(
    setup: tuple[AuthgateServer, OidcProvider, str], tmp_path: Path
) -> None:
    _, provider, _ = setup
    providers = {"idp": {"issuer": provider.issuer, "title": "Test IdP", "scopes": ["openid"]}}
    env = {
        "AUTHGATE_CONNECTION_PROVIDERS": json.dumps(providers),
        "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",
    }

    async def run() -> None:
        async with fresh_database("authgate_connect") as database:
            with two_replicas(database, tmp_path, add_user=True, **env) as (a, b):
                await asyncio.to_thread(_across, a, b, provider, database.render_as_string(hide_password=False))

    asyncio.run(run())


def _across(a: AuthgateServer, b: AuthgateServer, provider: OidcProvider, database_url: str) -> None:
    link = _link(a, provider, database_url, secret=a.env["AUTHGATE_SECRET_KEY"])
    with HeadlessUserAgent() as agent:  # the balancer sends the page to B, the callback to A
        params = _to_provider(agent, link.replace(a.url, b.url), a)
        done = agent.http.get(f"{a.url}/connect/callback?{urlencode(params)}")
        assert done.status_code == 200 and "Connected to" in done.text, done.text
    listed = b.cli("connections", "list", "--json")
    assert [json.loads(line)["provider"] for line in listed.stdout.splitlines()] == ["idp"], listed.stderr
    assert a.cli("connections", "revoke", "--user", "alice", "--provider", "idp").returncode == 0
    assert b.cli("connections", "list", "--json").stdout.strip() == ""
