"""A bounded load of whole OAuth flows against one or more authgate replicas, for fault tests
(issue 19): each worker thread registers a client, signs in and consents (once per worker: the
sign-in cookie is kept), redeems the code, refreshes, and calls /mcp, over and over until told
to stop. The replicas share the first one's URL as their public URL (as behind a load
balancer): the browser leg goes there, since its forms post to the public URL; every other
request goes to the replicas still `up`, in turn.

Every answer is checked as it arrives (`Ledger.problems`): never a text/plain 500 or a
traceback, and any 5xx is a 503 with `Retry-After` in the surface's shape (OAuth JSON
`temporarily_unavailable`, a JSON-RPC error on /mcp, an HTML page on the browser pages). What
was answered is kept (`Ledger.clients`, `Ledger.refresh`: each client's newest refresh token),
with the time it was answered, so a test can check that none of it was lost.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from support.authgate_server import AuthgateServer
from support.headless import HeadlessFlowError, HeadlessUserAgent

CALLBACK = "http://127.0.0.1:53682/callback"
PAGES = ("/authorize", "/login", "/consent")
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}},
}


@dataclass
class Ledger:
    """What the load saw; shared by the workers (one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[str, float] = field(default_factory=dict)  # client_id -> when its 201 arrived
    refresh: dict[str, tuple[str, float]] = field(default_factory=dict)  # client_id -> newest token, when
    statuses: dict[int, int] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)  # "POST /token 503" of each well-formed 503
    problems: list[str] = field(default_factory=list)  # answers that broke the rules
    unreachable: int = 0  # requests that got no answer (a replica killed)

    def check(self, response: httpx.Response) -> None:
        """The rules every answer keeps, whatever fails behind it."""
        response.read()
        path = response.request.url.path
        status, ctype = response.status_code, response.headers.get("content-type", "")
        text = response.text
        what = f"{response.request.method} {path} {status} {ctype}: {text[:200]!r}"
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        problem = None
        if "Traceback" in text or 'File "/' in text:
            problem = "a traceback in the answer"
        elif status >= 500 and status != 503:
            problem = "a 5xx other than 503"
        elif status == 503:
            problem = _bad_503(response, path, ctype)
            if problem is None:
                with self.lock:
                    self.unavailable.append(f"{response.request.method} {path} 503")
        if problem is not None:
            with self.lock:
                self.problems.append(f"{problem}: {what}")


def _bad_503(response: httpx.Response, path: str, ctype: str) -> str | None:
    if not response.headers.get("retry-after", "").isdigit():
        return "a 503 without Retry-After"
    if path.endswith(PAGES):
        return None if ctype.startswith("text/html") else "a page's 503 that is not HTML"
    if not ctype.startswith("application/json"):
        return "a 503 that is not JSON"
    body = response.json()
    if path.endswith("/mcp"):
        ok = body.get("jsonrpc") == "2.0" and isinstance(body.get("error"), dict)
        return None if ok else "a /mcp 503 that is not a JSON-RPC error"
    return None if body.get("error") == "temporarily_unavailable" else "an OAuth 503 not temporarily_unavailable"


class FlowLoad:
    """`workers` threads of whole flows against `replicas` (as one public URL: they share it)."""

    def __init__(self, replicas: Sequence[AuthgateServer], username: str, password: str, workers: int = 4) -> None:
        self.replicas = list(replicas)
        self.public = replicas[0].url  # the public URL of them all
        self.up = list(replicas)  # a test removes a replica it kills
        self.username, self.password = username, password
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"flow-load-{i}") for i in range(workers)]
        self._turn = itertools.count()
        self.flows = 0  # completed flows

    def __enter__(self) -> FlowLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a load worker did not stop"

    def _base(self) -> str:
        up = self.up or self.replicas
        return up[next(self._turn) % len(up)].url

    def _work(self) -> None:
        hooks: dict[str, Any] = {"response": [self.ledger.check]}
        with HeadlessUserAgent(timeout=15) as agent, httpx.Client(timeout=15, event_hooks=hooks) as http:
            agent.http.event_hooks["response"] = [self.ledger.check]
            while not self._stop.is_set():
                try:
                    if self._flow(agent, http):
                        self.flows += 1
                except (httpx.TransportError, HeadlessFlowError) as exc:
                    if isinstance(exc, httpx.TransportError):
                        with self.ledger.lock:
                            self.ledger.unreachable += 1
                    # a replica killed, or an error page (checked by the hook): the next flow
                    agent.http.cookies.clear()
                    time.sleep(0.05)

    def _flow(self, agent: HeadlessUserAgent, http: httpx.Client) -> bool:
        """One whole flow; False when an answer refused it (a 503: the hook checked its shape)."""
        body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "load"}
        r = http.post(f"{self._base()}/register", json=body)
        if r.status_code != 201:
            return False
        client_id = r.json()["client_id"]
        self._record_client(client_id)
        verifier, challenge = pkce_pair()
        answer = agent.authorize(auth_url(self.public, client_id, challenge), self.username, self.password)
        if not answer.code:
            raise HeadlessFlowError(f"no code: {answer}")
        form = {
            "grant_type": "authorization_code",
            "code": answer.code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
        }
        r = http.post(f"{self._base()}/token", data=form)
        if r.status_code != 200:
            return False
        self._record_refresh(client_id, r.json()["refresh_token"])
        refresh = {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"], "client_id": client_id}
        r = http.post(f"{self._base()}/token", data=refresh)
        if r.status_code != 200:
            return False
        tokens = r.json()
        self._record_refresh(client_id, tokens["refresh_token"])
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['access_token']}"}
        r = http.post(f"{self._base()}/mcp", json=INITIALIZE, headers=headers)
        return r.status_code == 200

    def _record_client(self, client_id: str) -> None:
        with self.ledger.lock:
            self.ledger.clients[client_id] = time.monotonic()

    def _record_refresh(self, client_id: str, token: str) -> None:
        with self.ledger.lock:
            self.ledger.refresh[client_id] = (token, time.monotonic())


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def auth_url(base: str, client_id: str, challenge: str, public: str | None = None, redirect_uri: str = CALLBACK) -> str:
    """An authorization request to the replica at `base` for the resource at `public` (default: `base`)."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": "load",
        "resource": f"{public or base}/mcp",
        "scope": "mcp",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base}/authorize?{urlencode(query)}"


def signed_in_code(
    server: AuthgateServer, client_id: str, redirect_uri: str = CALLBACK, ua: HeadlessUserAgent | None = None
) -> tuple[str, str]:
    """(code, PKCE verifier) for `client_id` with scope mcp, after the test user signed in and
    consented at `server` (in `ua`, if given, else a fresh headless user agent)."""
    verifier, challenge = pkce_pair()
    url = auth_url(server.url, client_id, challenge, redirect_uri=redirect_uri)
    if ua is not None:
        answer = ua.authorize(url, server.username, server.password)
    else:
        with HeadlessUserAgent() as fresh:
            answer = fresh.authorize(url, server.username, server.password)
    assert answer.code, answer
    return answer.code, verifier


def signed_in_tokens(
    server: AuthgateServer, client_name: str, *, resource: str | None = None, ua: HeadlessUserAgent | None = None
) -> dict[str, Any]:
    """The token response of a whole code flow at `server`: a public client named `client_name`
    registered, the test user signed in and consented (`signed_in_code`), the code redeemed
    (with `resource` when given)."""
    r = httpx.post(
        server.endpoint("register"),
        json={"client_name": client_name, "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    code, verifier = signed_in_code(server, client_id, ua=ua)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }
    if resource is not None:
        form["resource"] = resource
    r = httpx.post(server.endpoint("token"), data=form, timeout=10)
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def still_works(
    replica: AuthgateServer, client_id: str, refresh_token: str | None, public: str | None = None
) -> tuple[bool, str | None, str]:
    """Whether `client_id` is still known to `replica` (its authorization request gets the
    sign-in page, not an error page) and `refresh_token` still refreshes there: (ok, the new
    refresh token, what failed). `public`: the replicas' public URL, when not this one's."""
    _, challenge = pkce_pair()
    page = httpx.get(auth_url(replica.url, client_id, challenge, public), timeout=15)
    if page.status_code != 200 or "password" not in page.text:
        return False, None, f"GET /authorize for {client_id}: {page.status_code} {page.text[:200]!r}"
    if refresh_token is None:
        return True, None, ""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    r = httpx.post(f"{replica.url}/token", data=form, timeout=15)
    if r.status_code != 200:
        return False, None, f"refresh for {client_id}: {r.status_code} {r.text[:200]!r}"
    return True, str(r.json()["refresh_token"]), ""
