"""/admin: the operator's page. It lists the clients, the users, the live grants, recent audit
events and connection attempts, and revokes a client's grants, removes a client, revokes one
grant or removes a user (docs/admin.md).

Served only with `auth_mode = "embedded"` (its routes are not mounted otherwise, so /admin is a
404): in external mode authgate holds no users or grants, in proxy mode people sign in at the
upstream IdP and have no password here. Who can do what:

- anyone without a sign-in cookie: GET /admin is a 303 to /admin/login (the consent pages'
  sign-in: the same limits, argon2 workers and cookie) and back after it; a POST is 403
  without the CSRF token, else a 303 to sign in.
- a registered OAuth client: nothing more; bearer tokens are never read here.
- a signed-in person without the `admin` role (oauth/roles.py): 403 on every page and action.
- an admin: everything above. Every action is a POST form carrying the double-submit CSRF
  token (server/security.py); the answer is a 303 back to /admin whose notice is a fixed code,
  never text taken from the request. The pages carry the sign-in pages' headers (CSP with
  `frame-ancestors 'none'`, `X-Frame-Options: DENY`, `Cache-Control: no-store`); every value
  is printed escaped, and every list is bounded (pages of 50, read from the store a page at a
  time with a count; the newest grants and events).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.config.settings import Settings
from authgate.errors import SlowDown
from authgate.oauth import signin
from authgate.oauth.authority import Authority
from authgate.oauth.roles import ADMIN_ROLE
from authgate.server.forwarded import client_host
from authgate.server.pages import error_page, render
from authgate.server.routes import admin_rows as rows
from authgate.server.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Signer,
    csrf_ok,
    csrf_token,
    session_user,
    set_cookie,
)
from authgate.store.bundle import Stores
from authgate.store.models import User

log = logging.getLogger("authgate.admin")

ROUTES = (
    ("/admin", "admin", ("GET",)),
    ("/admin/login", "admin_login", ("GET", "POST")),
    ("/admin/logout", "admin_logout", ("POST",)),
    ("/admin/clients/revoke", "admin_revoke_client", ("POST",)),
    ("/admin/clients/remove", "admin_remove_client", ("POST",)),
    ("/admin/grants/revoke", "admin_revoke_grant", ("POST",)),
    ("/admin/users/remove", "admin_remove_user", ("POST",)),
    ("/admin/connections/revoke", "admin_revoke_connection", ("POST",)),
)
ADMIN_PAGES = frozenset(name for _, name, _ in ROUTES)  # answered in HTML, also when the store fails
PAGE_SIZE = 50  # clients and users per page
AUDIT_SHOWN = 50  # newest audit events
ATTEMPTS_SHOWN = 50  # newest connection attempts of the last ATTEMPTS_SINCE seconds
ATTEMPTS_SINCE = 86400.0
GRANTS_SHOWN = 100  # most recently used live grants listed (each client's are counted apart)
CONNECTIONS_SHOWN = 100  # users' connections to third-party providers (authgate.connections)
MAX_FIELD = 4096  # one form field
NOTICES = {
    "client-revoked": "Revoked {n} grant(s) of the client: its refresh tokens fail now, its access tokens "
    "within token_cache_seconds; its users are asked to consent again.",
    "client-removed": "Removed the client and revoked its grants.",
    "grant-revoked": "Revoked the grant.",
    "user-removed": "Removed the user and revoked their grants.",
    "connection-revoked": "Revoked the connection (also at the provider, where it has a revocation endpoint).",
    "not-found": "Nothing to do: it was already gone.",
    "self": "You cannot remove yourself; another admin can.",
}


def admin_routes(base_path: str) -> list[tuple[str, str, list[str]]]:
    """(path, handler name, methods) of the admin page's routes under `base_path`."""
    return [(base_path + path, name, list(methods)) for path, name, methods in ROUTES]


def is_admin(user: User) -> bool:
    return ADMIN_ROLE in user.roles


class AdminPages:
    def __init__(self, auth: Authority, stores: Stores, signer: Signer, settings: Settings) -> None:
        self.auth = auth
        self.stores = stores
        self.signer = signer
        self.settings = settings
        self.secure = auth.urls.secure_cookies
        self.cookie_path = auth.urls.base_path or "/"
        self.home_path = auth.urls.base_path + "/admin"
        self.connections: Any = None  # the app's ConnectionBroker, when providers are configured

    def handlers(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        return {
            "admin": self.page,
            "admin_login": self.login,
            "admin_logout": self.logout,
            "admin_revoke_client": lambda r: self._action(r, "client_id", self._revoke_client),
            "admin_remove_client": lambda r: self._action(r, "client_id", self._remove_client),
            "admin_revoke_grant": lambda r: self._action(r, "family_id", self._revoke_grant),
            "admin_remove_user": lambda r: self._action(r, "user_id", self._remove_user),
            "admin_revoke_connection": lambda r: self._action(r, "connection", self._revoke_connection),
        }

    # -- pages -----------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if not is_admin(user):
            return self._denied(request, user)
        token = csrf_token(request)
        context = await self._lists(request, user)
        done = request.query_params.get("done", "")
        count = request.query_params.get("n", "")
        notice = NOTICES.get(done, "").format(n=int(count) if count.isdigit() and len(count) < 10 else 0)
        response = render("admin.html", csrf_token=token, notice=notice, me=user, **self._actions(), **context)
        return self._with_csrf(response, token)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._login_page(request, _safe_next(request.query_params.get("next"), self.home_path))
        form = await self._form(request)
        next_path = _safe_next(_s(form.get("next")) if form else None, self.home_path)
        if form is None or not csrf_ok(request, _s(form.get("csrf_token"))):
            return self._csrf_refused("sign-in")
        username, password = _s(form.get("username")).strip(), _s(form.get("password"))
        try:
            user = await signin.sign_in(self.auth, username, password, client_host(request.scope))
        except SlowDown as exc:
            response = self._login_page(request, next_path, "Too many attempts. Wait a while and try again.", 429)
            response.headers.update(exc.headers())
            return response
        if user is None:
            return self._login_page(request, next_path, "Wrong username or password.", 401, username)
        response = self._redirect(self.auth.urls.origin + next_path)
        session = self.signer.dumps(
            "session", {"uid": user.user_id, "at": self.auth.clock(), "v": user.session_version}
        )
        max_age = self.settings.login_session_ttl
        set_cookie(response, SESSION_COOKIE, session, secure=self.secure, path=self.cookie_path, max_age=max_age)
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        if form is None or not csrf_ok(request, _s(form.get("csrf_token"))):
            return self._csrf_refused("sign-out")
        response = self._redirect(self.auth.urls.endpoint("admin/login"))
        response.delete_cookie(SESSION_COOKIE, path=self.cookie_path, secure=self.secure, httponly=True)
        return response

    # -- actions ---------------------------------------------------------------------------
    async def _action(self, request: Request, field: str, run: Callable[[str, User], Awaitable[str]]) -> Response:
        """CSRF first (no store read for a forged form), then the person, then the action."""
        form = await self._form(request)
        if form is None or not csrf_ok(request, _s(form.get("csrf_token"))):
            return self._csrf_refused("admin")
        user = await self._user(request)
        if user is None:
            return self._to_login(self.home_path)
        if not is_admin(user):
            return self._denied(request, user)
        target = _s(form.get(field))
        done = await run(target, user) if 0 < len(target) <= 512 else "not-found"
        return self._redirect(self.auth.urls.endpoint("admin") + "?" + done)

    async def _revoke_client(self, client_id: str, admin: User) -> str:
        reason = f"revoked by admin {admin.username}"
        count = await self.stores.grants.revoke_client_grants(client_id, reason, self.auth.clock())
        log.info("admin %r revoked %d grant(s) of client %r", admin.username, count, client_id)
        return urlencode({"done": "client-revoked", "n": count})

    async def _remove_client(self, client_id: str, admin: User) -> str:
        removed = await self.stores.clients.delete_client(client_id)  # revokes its grants too
        log.info("admin %r removed client %r: %s", admin.username, client_id, "done" if removed else "not found")
        return "done=" + ("client-removed" if removed else "not-found")

    async def _revoke_grant(self, family_id: str, admin: User) -> str:
        revoked = await self.stores.grants.revoke_family(
            family_id, f"revoked by admin {admin.username}", self.auth.clock()
        )
        log.info("admin %r revoked grant %r: %s", admin.username, family_id, "done" if revoked else "not found")
        return "done=" + ("grant-revoked" if revoked else "not-found")

    async def _remove_user(self, user_id: str, admin: User) -> str:
        if user_id == admin.user_id:
            return "done=self"
        if self.connections is not None:  # their tokens revoked at the providers too, not only deleted
            await self.connections.revoke_all(user_id)
        removed = await self.stores.users.remove_user(user_id, self.auth.clock())
        log.info("admin %r removed user %r: %s", admin.username, user_id, "done" if removed else "not found")
        return "done=" + ("user-removed" if removed else "not-found")

    async def _revoke_connection(self, target: str, admin: User) -> str:
        provider, _, user_id = target.partition(":")  # provider names hold no ':' (config/connections.py)
        revoked = self.connections is not None and user_id and await self.connections.revoke(user_id, provider)
        log.info("admin %r revoked the %r connection of %r: %s", admin.username, provider, user_id, bool(revoked))
        return "done=" + ("connection-revoked" if revoked else "not-found")

    async def _connection_rows(self) -> list[dict[str, str]]:
        if self.connections is None:
            return []
        found = (await self.connections.list(None))[:CONNECTIONS_SHOWN]
        names = {}
        for user_id in {c.user_id for c in found}:
            user = await self.stores.users.get_user(user_id)
            names[user_id] = user.username if user else user_id
        return [rows.connection_row(c, names[c.user_id]) for c in found]

    # -- what the page lists ---------------------------------------------------------------
    async def _lists(self, request: Request, me: User) -> dict[str, Any]:
        # one page of each (newest first) and a count: registration is open, so the clients
        # table may hold tens of thousands of rows, and no view of the page reads them all
        query, now = request.query_params, self.auth.clock()
        client_pages = rows.Pager.of(await self.stores.clients.count_clients(), query.get("clients"), PAGE_SIZE)
        clients = await self.stores.clients.list_clients(limit=PAGE_SIZE, offset=client_pages.start)
        per_client = await self.stores.grants.count_live_grants([c.client_id for c in clients], now=now)
        user_pages = rows.Pager.of(await self.stores.users.count_users(), query.get("users"), PAGE_SIZE)
        users = await self.stores.users.list_users(limit=PAGE_SIZE, offset=user_pages.start)
        live = await self.stores.grants.list_live_grants(limit=GRANTS_SHOWN + 1, now=now)
        audit = await self.stores.audit.list_audit_events(limit=AUDIT_SHOWN)
        since = self.auth.clock() - ATTEMPTS_SINCE
        attempts = await self.stores.attempts.list_attempts(since=since, limit=ATTEMPTS_SHOWN)
        return {
            "clients": [rows.client_row(c, per_client.get(c.client_id, 0)) for c in clients],
            "client_pages": self._pager(request, "clients", client_pages),
            "users": [rows.user_row(u, me) for u in users],
            "user_pages": self._pager(request, "users", user_pages),
            "grants": [rows.grant_row(g) for g in live[:GRANTS_SHOWN]],
            "grants_truncated": len(live) > GRANTS_SHOWN,
            "attempts": [rows.attempt_row(a) for a in attempts],
            "attempts_shown": ATTEMPTS_SHOWN,
            "audit": [rows.audit_row(e) for e in reversed(audit)],
            "connections": await self._connection_rows(),
            "connections_on": self.connections is not None,
        }

    def _pager(self, request: Request, key: str, pager: rows.Pager) -> dict[str, Any]:
        def link(page: int) -> str:
            params = {k: v for k, v in request.query_params.items() if k in ("clients", "users")}
            params[key] = str(page)
            return self.home_path + "?" + urlencode(params)

        return {
            "page": pager.page,
            "pages": pager.pages,
            "total": pager.total,
            "prev": link(pager.page - 1) if pager.page > 1 else "",
            "next": link(pager.page + 1) if pager.page < pager.pages else "",
        }

    def _actions(self) -> dict[str, Any]:
        b = self.home_path
        return {
            "revoke_client_url": f"{b}/clients/revoke",
            "remove_client_url": f"{b}/clients/remove",
            "revoke_grant_url": f"{b}/grants/revoke",
            "remove_user_url": f"{b}/users/remove",
            "revoke_connection_url": f"{b}/connections/revoke",
            "logout_url": f"{b}/logout",
        }

    # -- the pieces ------------------------------------------------------------------------
    async def _user(self, request: Request) -> User | None:
        return await session_user(request, self.signer, self.stores.users, self.settings.login_session_ttl)

    async def _form(self, request: Request) -> FormData | None:
        try:
            return await request.form(max_files=0, max_fields=20, max_part_size=MAX_FIELD)
        except HTTPException:  # python-multipart's limits
            return None

    def _login_page(
        self, request: Request, next_path: str, error: str | None = None, status: int = 200, username: str = ""
    ) -> Response:
        token = csrf_token(request)
        response = render(
            "login.html",
            status=status,
            purpose="Sign in as an administrator",
            server_name=self.auth.urls.origin,
            error=error,
            username=username,
            action=self.auth.urls.endpoint("admin/login"),
            csrf_token=token,
            next=next_path,
        )
        return self._with_csrf(response, token)

    def _denied(self, request: Request, user: User) -> Response:
        token = csrf_token(request)
        response = render(
            "admin_denied.html",
            status=403,
            username=user.username,
            logout_url=self._actions()["logout_url"],
            csrf_token=token,
        )
        return self._with_csrf(response, token)

    def _csrf_refused(self, what: str) -> Response:
        return error_page(
            "Session check failed",
            f"The {what} form was not sent by this page.",
            "Enable cookies, reload the admin page and try again.",
            403,
        )

    def _to_login(self, next_path: str) -> Response:
        query = urlencode({"next": _safe_next(next_path, self.home_path)})
        return self._redirect(f"{self.auth.urls.endpoint('admin/login')}?{query}")

    def _redirect(self, url: str) -> Response:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    def _with_csrf(self, response: Response, token: str) -> Response:
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response


_NEXT = re.compile(r"/admin(\?[A-Za-z0-9=&%._-]{0,200})?")


def _safe_next(value: str | None, home: str) -> str:
    """Where to go after signing in: the admin page (with its own page numbers) only, never a
    URL the request names (no open redirect)."""
    base = home[: -len("/admin")]
    if value and value.startswith(base) and _NEXT.fullmatch(value[len(base) :]):
        return value
    return home


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""
