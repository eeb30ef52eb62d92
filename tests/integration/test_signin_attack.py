"""Sign-in under attack (issue 11, Done-when 4), on the real server over real sockets:
argon2 runs in worker threads while the event loop answers; no (user, address) pair gets
more password checks than its limit, also while another connection holds SQLite's write
lock; 200 addresses in one IPv6 /64 count as one; the owner still signs in from a known
address while the per-account limit holds everyone else; every 429 carries Retry-After.

Addresses other than 127.0.0.1 come in `X-Forwarded-For`: the test client connects from
127.0.0.1, which `trusted_proxies` trusts by default, so authgate believes the header as it
would a reverse proxy's. The latency of /health under 12 attackers is in bench/signin_attack.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette

import authgate
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.headless import AuthorizationResponse, Form, HeadlessUserAgent, Page
from support.ports import free_port

CALLBACK = "http://127.0.0.1:53999/cb"
WRONG = "not-the-password"


def authorization_url(base: str) -> str:
    r = httpx.post(
        f"{base}/register", json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}, timeout=10
    )
    assert r.status_code == 201, r.text
    query = httpx.QueryParams(
        {
            "response_type": "code",
            "client_id": r.json()["client_id"],
            "redirect_uri": CALLBACK,
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    return f"{base}/authorize?{query}"


@contextmanager
def login_form(base: str) -> Iterator[tuple[HeadlessUserAgent, Form]]:
    """A browser stand-in holding a sign-in page's CSRF cookie, and that page's form."""
    with HeadlessUserAgent() as agent:
        page = agent.open(authorization_url(base))
        assert isinstance(page, Page) and page.login_form is not None
        yield agent, page.login_form


def attempt(
    agent: HeadlessUserAgent, form: Form, username: str, password: str, address: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return agent.http.post(form.action, data=form.values(username=username, password=password), headers=headers)


def assert_retry_after(r: httpx.Response) -> None:
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1, r.headers  # RFC 6585 §4


# -- argon2 off the event loop ------------------------------------------------------------------


def test_password_checks_wait_in_worker_threads_while_the_server_answers(tmp_path: Path) -> None:
    port = free_port()
    app = authgate.protect(
        Starlette(),
        public_url=f"http://127.0.0.1:{port}",
        data_dir=tmp_path / "data",
        max_concurrent_password_checks=2,
        log_level="warning",
    )
    with (
        serve_asgi_in_thread(app, port, lifespan="on") as base,
        login_form(base) as (agent, form),
        ThreadPoolExecutor(3) as pool,
    ):
        assert app.runtime is not None
        checks = app.runtime.auth.password_checks
        cookies = dict(agent.cookies)

        def sign_in() -> int:  # an unknown user: the dummy hash, through the same workers
            with httpx.Client(cookies=cookies, timeout=30) as http:
                return http.post(form.action, data=form.values(username="nobody", password=WRONG)).status_code

        with checks.hold():
            pending: list[Future[int]] = [pool.submit(sign_in) for _ in range(3)]
            assert checks.wait_in_workers(2, timeout=15), "two verifications never reached their workers"
            # Both workers are held mid-verification: were argon2 on the event loop, the loop
            # would be held with them and /health could not answer.
            health = httpx.get(f"{base}/health", timeout=10)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert checks.in_workers == 2  # the cap: the third waits its turn outside the workers
            assert not any(f.done() for f in pending)
        assert [f.result(timeout=30) for f in pending] == [401, 401, 401]
        assert checks.in_workers == 0


# -- limits that hold -------------------------------------------------------------------------


def test_no_pair_gets_more_checks_than_its_limit_while_sqlite_is_locked(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE="5", AUTHGATE_LOGIN_ATTEMPTS_PER_ACCOUNT="100")
    with login_form(server.url) as (agent, form):
        before = [attempt(agent, form, server.username, WRONG).status_code for _ in range(2)]
        assert before == [401, 401]
        locker = sqlite3.connect(server.data_dir / "authgate.db", timeout=1, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock: no count can be stored
            cookies = dict(agent.cookies)

            def one() -> httpx.Response:
                with httpx.Client(cookies=cookies, timeout=60) as http:
                    return http.post(form.action, data=form.values(username=server.username, password=WRONG))

            with ThreadPoolExecutor(8) as pool:
                during = list(pool.map(lambda _: one(), range(8)))
            after_one = attempt(agent, form, server.username, WRONG)  # still locked: the breaker's rest
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        after = [attempt(agent, form, server.username, WRONG) for _ in range(2)]  # the store answers again
    statuses = before + [r.status_code for r in [*during, after_one, *after]]
    assert statuses.count(401) == 5, statuses  # five password checks in all, never more
    for r in [*during, after_one, *after]:
        if r.status_code != 401:
            assert_retry_after(r)
    logs = server.logs()
    assert logs.count("rate limit logins: the store cannot count") == 1, logs  # it failed, logged once


def test_the_owner_signs_in_from_a_known_address_while_an_attack_is_limited(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(
        AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE="5",
        AUTHGATE_LOGIN_ATTEMPTS_PER_ACCOUNT="10",
        AUTHGATE_REGISTRATIONS_PER_MINUTE="4",
    )
    home = "198.51.100.7"
    with HeadlessUserAgent(headers={"X-Forwarded-For": home}) as owner:  # signs in once: a known address
        assert isinstance(
            owner.authorize(authorization_url(server.url), server.username, server.password), AuthorizationResponse
        )

    with login_form(server.url) as (agent, form):
        # 200 addresses in one /64 count as one address: five checks, then 429s
        one_64 = [attempt(agent, form, "carol", WRONG, f"2001:db8:7:7::{i:x}") for i in range(1, 201)]
        assert [r.status_code for r in one_64] == [401] * 5 + [429] * 195
        for r in one_64[5:]:
            assert_retry_after(r)
        # one address per /64: the per-account limit (10 an hour; the owner's first sign-in,
        # from a then unknown address, was one) stops them
        spread = [attempt(agent, form, server.username, WRONG, f"2001:db8:{i:x}::1") for i in range(1, 31)]
        assert [r.status_code for r in spread] == [401] * 9 + [429] * 21
        assert "Too many attempts" in spread[-1].text
        for r in spread[9:]:
            assert_retry_after(r)
        # the right password from a new address waits like the attackers
        assert_retry_after(attempt(agent, form, server.username, server.password, "192.0.2.55"))

    with HeadlessUserAgent(headers={"X-Forwarded-For": home}) as owner:  # a fresh browser at home
        done = owner.authorize(authorization_url(server.url), server.username, server.password)
    assert isinstance(done, AuthorizationResponse) and done.code

    # and /register's 429 carries Retry-After too (the token endpoint has no 429)
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
    registrations = [
        httpx.post(server.endpoint("register"), json=body, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
        for _ in range(5)
    ]
    assert [r.status_code for r in registrations] == [201] * 4 + [429]
    assert_retry_after(registrations[-1])
    assert registrations[-1].json()["error"] == "slow_down"


def test_with_forwarded_header_forwarded_only_rfc_7239_names_the_address(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    # (X-Forwarded-For, the default, is what the tests above send; unit: tests/server/test_forwarded.py)
    server = authgate_factory(AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE="1", AUTHGATE_FORWARDED_HEADER="forwarded")
    with login_form(server.url) as (agent, form):

        def status(header: str, value: str) -> int:
            return agent.http.post(
                form.action, data=form.values(username="dave", password=WRONG), headers={header: value}
            ).status_code

        # each address in Forwarded is its own source: one attempt each passes the limit of 1
        assert [status("Forwarded", f'for="[2001:db8:{i}::1]:4711"') for i in (1, 2, 3)] == [401, 401, 401]
        # X-Forwarded-For is not believed then: all these are 127.0.0.1, one source
        assert [status("X-Forwarded-For", f"192.0.2.{i}") for i in (1, 2, 3)] == [401, 429, 429]
