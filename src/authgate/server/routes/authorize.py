"""GET /authorize, POST /login, POST /consent: the browser leg of the code flow."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.config.settings import Settings
from authgate.errors import AccessDenied, SlowDown
from authgate.oauth import authorize, signin
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import AuthorizationRequest, RedirectError, UnverifiedRedirect
from authgate.oauth.redirect_uris import form_action_source
from authgate.oauth.scopes import is_subset
from authgate.policy.model import Policy
from authgate.server.forms import read_form
from authgate.server.forwarded import client_host
from authgate.server.pages import describe_scopes, error_page, render
from authgate.server.responses import error_redirect
from authgate.server.routes import attempt_steps
from authgate.server.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Signer,
    csrf_ok,
    csrf_token,
    session_user,
    set_cookie,
)
from authgate.store.models import Consent, User

REQUEST_MAX_AGE = 900  # seconds a person has to sign in and decide


async def validated(auth: Authority, request: Request) -> AuthorizationRequest | Response:
    """The authorization request of GET /authorize, or the answer that refuses it: a page when
    the redirect URI cannot be trusted, else a redirect to the client (RFC 6749 §4.1.2.1)."""
    try:
        req = await authorize.validate(auth, list(request.query_params.multi_items()))
    except UnverifiedRedirect as exc:
        await attempt_steps.authorize_refused(auth, request, exc)
        return error_page(
            "This app cannot sign in",
            exc.description,
            "Go back to the app and connect again; if it keeps failing, tell its developer.",
        )
    except RedirectError as err:
        await attempt_steps.authorize_refused(auth, request, err.error)
        return error_redirect(auth, err, 302)
    await attempt_steps.authorize_reached(auth, request, req)
    return req


class BrowserFlow:
    def __init__(self, auth: Authority, signer: Signer, settings: Settings) -> None:
        self.auth = auth
        self.signer = signer
        self.settings = settings  # what the pages read beyond the core's config (cookie lifetime, policy)
        self.secure = auth.urls.secure_cookies
        self.cookie_path = auth.urls.base_path or "/"
        self.policy = Policy.from_settings(settings)  # which tools each scope unlocks

    # -- endpoints ---------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        req = await validated(self.auth, request)
        if isinstance(req, Response):
            return req
        user = await self._session_user(request)
        if user is None:
            return self._login_page(request, req)
        return await self._consent_or_code(request, req, user, self._auth_time(request))

    async def login(self, request: Request) -> Response:
        checked = await self._checked_form(request, "sign-in")
        if isinstance(checked, Response):
            return checked
        form, req = checked
        username, password = _s(form.get("username")).strip(), _s(form.get("password"))
        try:  # the limits, then argon2 in a worker thread (oauth/signin.py)
            user = await signin.sign_in(self.auth, username, password, client_host(request.scope))
        except SlowDown as exc:
            response = self._login_page(request, req, "Too many attempts. Wait a while and try again.", username, 429)
            response.headers.update(exc.headers())  # its Retry-After (RFC 6585 §4)
            return response
        if user is None:
            return self._login_page(request, req, "Wrong username or password.", username, 401)
        await attempt_steps.browser_step(self.auth, req, "sign-in")
        now = self.auth.clock()
        response = await self._consent_or_code(request, req, user, now)
        session = self.signer.dumps("session", {"uid": user.user_id, "at": now, "v": user.session_version})
        set_cookie(
            response,
            SESSION_COOKIE,
            session,
            secure=self.secure,
            path=self.cookie_path,
            max_age=self.settings.login_session_ttl,
        )
        return response

    async def consent(self, request: Request) -> Response:
        checked = await self._checked_form(request, "consent")
        if isinstance(checked, Response):
            return checked
        form, req = checked
        user = await self._session_user(request)
        if user is None:
            return self._login_page(request, req)
        if form.get("decision") != "allow":
            denied = AccessDenied("the user denied access")
            await attempt_steps.browser_refused(self.auth, req, "consent", denied)
            return error_redirect(self.auth, req.refused(denied))
        narrowed = await self._for_user(req, user)  # the signed-in user may differ from the page's
        if isinstance(narrowed, Response):
            return narrowed
        req = narrowed
        await self.auth.store.save_consent(
            Consent(user.user_id, req.client_id, req.scopes, req.resources, self.auth.clock())
        )
        return await self._code_redirect(req, user, self._auth_time(request))

    # -- steps -------------------------------------------------------------------------
    async def _consent_or_code(
        self, request: Request, req: AuthorizationRequest, user: User, auth_time: float
    ) -> Response:
        narrowed = await self._for_user(req, user)  # the page lists only what this user may grant
        if isinstance(narrowed, Response):
            return narrowed
        req = narrowed
        consent = await self.auth.store.get_consent(user.user_id, req.client_id)
        remembered = (
            consent is not None
            and is_subset(req.scopes, consent.scopes)
            and is_subset(req.resources, consent.resources)
        )
        # a CIMD client with only loopback redirects could be anyone: always ask
        if remembered and not (req.via_cimd and req.loopback_only):
            return await self._code_redirect(req, user, auth_time)
        # incremental consent (a step-up): ask only for what this client does not hold yet
        held = consent.scopes if consent is not None else ()
        asked = tuple(s for s in req.scopes if s not in held) or req.scopes
        scopes = [{**d, "unlocks": self.policy.unlocked_by(d["name"])} for d in describe_scopes(asked)]
        token = csrf_token(request)
        response = render(
            "consent.html",
            form_targets=[form_action_source(req.redirect_uri)],
            client_name=req.client_name,
            unverified_client=req.unverified_client,
            username=user.username,
            redirect_host=req.redirect_host,
            loopback_warning=req.via_cimd and req.loopback_only,
            scopes=scopes,
            already=[s for s in req.scopes if s in held],
            action=self.auth.urls.endpoint("consent"),
            csrf_token=token,
            request_token=self.signer.dumps("authz", req.to_dict()),
        )
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response

    async def _for_user(self, req: AuthorizationRequest, user: User) -> AuthorizationRequest | Response:
        try:
            return authorize.for_user(self.auth, req, user)
        except RedirectError as err:
            await attempt_steps.browser_refused(self.auth, req, "consent", err.error)
            return error_redirect(self.auth, err)

    async def _code_redirect(self, req: AuthorizationRequest, user: User, auth_time: float) -> Response:
        code = await authorize.issue_code(self.auth, req, user.user_id, auth_time)
        await attempt_steps.browser_step(self.auth, req, "sign-in", "consent")  # signed in, consented
        url = authorize.redirect_url(self.auth, req.redirect_uri, {"code": code, "state": req.state})
        return RedirectResponse(url, status_code=303)

    def _login_page(
        self,
        request: Request,
        req: AuthorizationRequest,
        error: str | None = None,
        username: str | None = None,
        status: int = 200,
    ) -> Response:
        token = csrf_token(request)
        response = render(
            "login.html",
            status=status,
            form_targets=[form_action_source(req.redirect_uri)],
            client_name=req.client_name,
            server_name=self.auth.urls.origin,
            error=error,
            username=username,
            action=self.auth.urls.endpoint("login"),
            csrf_token=token,
            request_token=self.signer.dumps("authz", req.to_dict()),
        )
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response

    async def _checked_form(self, request: Request, what: str) -> tuple[FormData, AuthorizationRequest] | Response:
        """The posted form and its pending request, once the request's signature and the
        CSRF token check out; otherwise the error page to show."""
        form = await read_form(request)
        req = self._pending(form.get("request"))
        if req is None:
            return self._expired()
        if not csrf_ok(request, _s(form.get("csrf_token"))):
            return error_page(
                "Session check failed",
                f"The {what} form was not sent by this page.",
                "Enable cookies and start again from your app.",
                403,
            )
        return form, req

    def _pending(self, raw: Any) -> AuthorizationRequest | None:
        data = self.signer.loads("authz", _s(raw), REQUEST_MAX_AGE)
        return AuthorizationRequest.from_dict(data) if isinstance(data, dict) else None

    def _expired(self) -> Response:
        return error_page(
            "This sign-in has expired",
            "The page was open too long or was altered.",
            "Go back to the app and connect again.",
        )

    async def _session_user(self, request: Request) -> User | None:
        # a password change bumps the version: cookies signed before it end (on every replica)
        return await session_user(request, self.signer, self.auth.store, self.settings.login_session_ttl)

    def _auth_time(self, request: Request) -> float:
        data = getattr(request.state, "authgate_session", None)  # session_user's, this request
        if data is None:
            data = self.signer.loads(
                "session", request.cookies.get(SESSION_COOKIE, ""), self.settings.login_session_ttl
            )
        return float(data.get("at", self.auth.clock())) if isinstance(data, dict) else self.auth.clock()


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""
