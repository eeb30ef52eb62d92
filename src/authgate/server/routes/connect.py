"""GET/POST /connect/{elicitation_id}, GET /connect/callback: the connect page (issue 15).

A tool asked for the caller's connection to a third-party provider (`broker.require`); the
person opens the link it gave. Who can do what:

- anyone without the link: nothing (128-bit id; an unknown, expired or used id is a 404 page).
- anyone with the link but not signed in here: the sign-in form (the consent pages' sign-in:
  same limits, argon2 workers, cookie), then back to this page.
- another signed-in person: 403 ("made for another person"); the link stays usable by its owner.
- its owner: a page naming the provider and the scopes; "Continue" (a POST carrying the
  double-submit CSRF token) starts the authorization at the provider (PKCE S256, `state`
  bound to this browser session: `authgate.connections.links`) with a 303.
- the callback: only in the browser session that started it, once (`state` single use on
  every replica), `iss` checked (RFC 9207); it never redirects (no open redirect): a page says
  "connected, return to your client" or why not.
- a registered OAuth client, with or without a bearer token: nothing more (no bearer is read).
Pages carry the sign-in pages' headers (CSP, `frame-ancestors 'none'`, `no-store`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.connections import ConnectionBroker, ConnectLinkError
from authgate.connections.links import pending_link, valid_id
from authgate.connections.upstream import broker_providers
from authgate.errors import SlowDown
from authgate.oauth import signin
from authgate.oauth.redirect_uris import form_action_source
from authgate.outbound.client_document import document_url
from authgate.outbound.errors import OutboundAuthError
from authgate.server.forwarded import client_host
from authgate.server.pages import describe_scopes, error_page, render
from authgate.server.runtime import Runtime, load_secret
from authgate.server.security import CSRF_COOKIE, SESSION_COOKIE, csrf_ok, csrf_token, session_user, set_cookie
from authgate.store.models import User

log = logging.getLogger("authgate.connections")

ROUTES = (
    ("/connect/callback", "connect_callback", ("GET",)),  # before the {elicitation_id} route
    ("/connect/{elicitation_id}", "connect", ("GET", "POST")),
)
CONNECT_PAGES = frozenset(name for _, name, _ in ROUTES)  # answered in HTML, also when the store fails
MAX_FIELD = 4096


def connect_routes(base_path: str) -> list[tuple[str, str, list[str]]]:
    return [(base_path + path, name, list(methods)) for path, name, methods in ROUTES]


def broker_from(rt: Runtime) -> ConnectionBroker:
    s = rt.settings
    broker = ConnectionBroker(
        broker_providers(s),  # the configured ones and the protected upstream's (connections/upstream.py)
        rt.stores.connections,
        load_secret(s),
        public_url=s.urls.base,
        link_ttl=float(s.connection_link_ttl),
        refresh_margin=float(s.connection_refresh_margin),
        allow_loopback_http=s.outbound_allow_loopback_http,
        cimd_url=document_url(s.urls.base),  # authgate's CIMD document (https public_url only)
        clock=rt.auth.clock,
    )
    if s.token_exchange_issuers:  # RFC 8693 toward the ASes that trust authgate's issuer
        from authgate.outbound.exchange import TokenExchange

        broker.exchanger = TokenExchange(
            broker.remote,
            rt.auth.keys,
            issuer=s.urls.issuer,
            trusted=s.token_exchange_issuers,
            subject_ttl=s.token_exchange_subject_ttl,
            clock=rt.auth.clock,
        )
    return broker


class ConnectPages:
    def __init__(self, rt: Runtime, broker: ConnectionBroker) -> None:
        self.rt = rt
        self.auth = rt.auth
        self.broker = broker
        self.secure = rt.auth.urls.secure_cookies
        self.cookie_path = rt.auth.urls.base_path or "/"

    def handlers(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        return {"connect": self.page, "connect_callback": self.callback}

    async def page(self, request: Request) -> Response:
        eid = str(request.path_params.get("elicitation_id", ""))
        try:
            link = await pending_link(self.broker, eid) if valid_id(eid) else None
        except ConnectLinkError as exc:
            return _refused(exc)
        if link is None:
            return _refused(ConnectLinkError("this connect link is unknown or has expired", status=404))
        form = None
        if request.method == "POST":
            form = await _form(request)
            if form is None or not csrf_ok(request, _s(form.get("csrf_token"))):
                return error_page("Session check failed", "The form was not sent by this page.", "Reload it.", 403)
        user, session = await self._user(request), request.cookies.get(SESSION_COOKIE, "")
        set_session: str | None = None
        if form is not None and form.get("username") is not None and self.rt.settings.auth_mode == "embedded":
            signed_in = await self._sign_in(request, form, eid)
            if isinstance(signed_in, Response):
                return signed_in
            user = signed_in
            session = set_session = self.rt.signer.dumps(
                "session", {"uid": user.user_id, "at": self.auth.clock(), "v": user.session_version}
            )
        if user is None and self.rt.settings.auth_mode == "proxy":  # no password here: the upstream's sign-in
            return error_page(
                "Sign in first",
                "This server signs people in at its identity provider, through your app.",
                "Connect your app to this server in this browser (or sign in again through it), "
                "then open the link again.",
                401,
            )
        if user is None:
            return self._login(request, eid)
        if user.user_id != link.user_id:
            log.info("connect link for %s opened by another user %s: refused", link.user_id, user.user_id)
            return _refused(ConnectLinkError("this connect link was made for another person", status=403))
        if form is None or form.get("username") is not None and form.get("decision") is None:
            response = await self._confirm(request, eid, link.provider, link.scopes, user)
        elif form.get("decision") != "connect":
            response = error_page("Not connected", "You chose not to connect.", "You may close this page.", 200)
        else:
            response = await self._begin(eid, user, session)
        if set_session is not None:
            max_age = self.rt.settings.login_session_ttl
            set_cookie(
                response, SESSION_COOKIE, set_session, secure=self.secure, path=self.cookie_path, max_age=max_age
            )
        return response

    async def callback(self, request: Request) -> Response:
        session = request.cookies.get(SESSION_COOKIE, "")
        try:
            info = await self.broker.complete(request.url.query, session)
        except ConnectLinkError as exc:
            return _refused(exc)
        except OutboundAuthError as exc:
            if exc.error == "access_denied":
                return error_page("Not connected", "You declined at the provider.", "You may close this page.", 200)
            log.warning("a connection could not be completed: %s", exc)
            return error_page(
                "The provider refused the connection",
                str(exc)[:300],
                "Go back to your app and try again; if it keeps failing, tell the operator.",
                502,
            )
        config = self.broker.providers.get(info.provider)
        log.info("connection of %s to %s made", info.user_id, info.provider)
        return render("connect.html", done=True, provider=config.shown if config else info.provider)

    # -- steps -------------------------------------------------------------------------------------
    async def _confirm(
        self, request: Request, eid: str, provider: str, scopes: tuple[str, ...], user: User
    ) -> Response:
        config = self.broker.providers[provider]
        try:
            endpoint = await self.broker.remote.endpoint(config)
        except OutboundAuthError as exc:
            log.warning("provider %s cannot be reached: %s", provider, exc)
            return error_page("The provider cannot be reached", str(exc)[:300], "Try again later.", 502)
        token = csrf_token(request)
        response = render(
            "connect.html",
            form_targets=[form_action_source(endpoint.server.authorization_endpoint)],
            provider=config.shown,
            username=user.username,
            scopes=describe_scopes(scopes),
            action=self.auth.urls.endpoint(f"connect/{eid}"),
            csrf_token=token,
        )
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response

    async def _begin(self, eid: str, user: User, session: str) -> Response:
        try:
            url = await self.broker.begin(eid, user.user_id, session)
        except ConnectLinkError as exc:
            return _refused(exc)
        except OutboundAuthError as exc:
            log.warning("cannot start a connection: %s", exc)
            return error_page("The provider cannot be used", str(exc)[:300], "Try again later.", 502)
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    async def _sign_in(self, request: Request, form: FormData, eid: str) -> User | Response:
        username, password = _s(form.get("username")).strip()[:255], _s(form.get("password"))[:1024]
        try:
            user = await signin.sign_in(self.auth, username, password, client_host(request.scope))
        except SlowDown as exc:
            response = self._login(request, eid, "Too many attempts. Wait a while and try again.", 429)
            response.headers.update(exc.headers())
            return response
        return user if user is not None else self._login(request, eid, "Wrong username or password.", 401)

    def _login(self, request: Request, eid: str, error: str | None = None, status: int = 200) -> Response:
        token = csrf_token(request)
        response = render(
            "login.html",
            status=status,
            purpose="Sign in to connect an account",
            server_name=self.auth.urls.origin,
            error=error,
            action=self.auth.urls.endpoint(f"connect/{eid}"),
            csrf_token=token,
        )
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response

    async def _user(self, request: Request) -> User | None:
        return await session_user(request, self.rt.signer, self.auth.store, self.rt.settings.login_session_ttl)


def _refused(exc: ConnectLinkError) -> Response:
    return error_page("Cannot connect", str(exc), "Go back to your app and ask again.", exc.status)


async def _form(request: Request) -> FormData | None:
    try:
        return await request.form(max_files=0, max_fields=10, max_part_size=MAX_FIELD)
    except HTTPException:
        return None


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""
