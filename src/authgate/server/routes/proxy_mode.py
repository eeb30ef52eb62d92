"""Proxy mode's browser leg (auth_mode = "proxy"): GET /authorize → consent page (before any
redirect to the upstream: the confused-deputy rule for a proxy with one static client) → POST
/consent → the upstream's authorization endpoint (PKCE, `state` bound to this browser by a
signed cookie) → GET /upstream/callback: code exchange, identity, allow-lists, local user,
sealed upstream tokens → authgate's own code to the MCP client.

Consent is asked on every authorization: before the redirect nobody is signed in, so there is
no person to remember a decision for (a cookie would remember a browser, not a person). The
decision is still recorded for the upstream subject after the callback, like embedded mode's.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.config.gateway import wants_connections
from authgate.config.settings import Settings
from authgate.errors import AccessDenied, OAuthError, ServerError
from authgate.idp.proxy.grant_check import UpstreamGrantCheck
from authgate.idp.proxy.identity import refusal
from authgate.idp.proxy.presets import resolve
from authgate.idp.proxy.upstream_access import UpstreamAccess
from authgate.idp.proxy.upstream_idp import TIMEOUT, UpstreamClient, UpstreamIdpError, pkce_pair
from authgate.idp.proxy.vault import UpstreamVault
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import AuthorizationRequest
from authgate.oauth.redirect_uris import form_action_source
from authgate.server.pages import describe_scopes, error_page, render
from authgate.server.responses import error_redirect
from authgate.server.routes import attempt_steps
from authgate.server.routes.authorize import REQUEST_MAX_AGE, BrowserFlow, validated
from authgate.server.runtime import Runtime, load_secret
from authgate.server.security import CSRF_COOKIE, SESSION_COOKIE, Signer, csrf_token, set_cookie
from authgate.store.models import Consent, User

UPSTREAM_COOKIE = "authgate_upstream"
log = logging.getLogger("authgate.proxy")


class ProxyFlow(BrowserFlow):
    def __init__(
        self, auth: Authority, signer: Signer, settings: Settings, upstream: UpstreamClient, vault: UpstreamVault
    ) -> None:
        super().__init__(auth, signer, settings)
        self.upstream = upstream
        self.vault = vault
        # the caller's upstream token for the app behind authgate (library tools, the gateway's header)
        self.access = UpstreamAccess(vault, upstream, auth.store, auth.clock, upstream.upstream.name)
        parts = urlsplit(upstream.upstream.authorize_url)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"

    async def authorize(self, request: Request) -> Response:
        req = await validated(self.auth, request)
        if isinstance(req, Response):
            return req
        return self._consent_page(request, req)

    async def consent(self, request: Request) -> Response:
        checked = await self._checked_form(request, "consent")
        if isinstance(checked, Response):
            return checked
        form, req = checked
        if form.get("decision") != "allow":
            return await self._client_error(req, AccessDenied("the user denied access"), "consent")
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        response = RedirectResponse(self.upstream.authorize_url(state, challenge, nonce), status_code=303)
        pending = self.signer.dumps(
            "upstream", {"state": state, "verifier": verifier, "nonce": nonce, "req": req.to_dict()}
        )
        set_cookie(
            response, UPSTREAM_COOKIE, pending, secure=self.secure, path=self.cookie_path, max_age=REQUEST_MAX_AGE
        )
        return response

    async def callback(self, request: Request) -> Response:
        pending = self.signer.loads("upstream", request.cookies.get(UPSTREAM_COOKIE, ""), REQUEST_MAX_AGE)
        state = request.query_params.get("state", "")
        if not isinstance(pending, dict) or not hmac.compare_digest(str(pending.get("state", "")), state):
            return error_page(
                "This sign-in was not started here",
                "The answer of the identity provider does "
                "not belong to a sign-in started in this browser, or it expired.",
                "Go back to the app and connect again.",
            )
        req = AuthorizationRequest.from_dict(pending["req"])
        code = request.query_params.get("code")
        if not code:
            error = request.query_params.get("error", "access_denied")
            return self._done(await self._client_error(req, AccessDenied(f"the identity provider said {error}")))
        try:
            tokens = await self.upstream.exchange(code, str(pending["verifier"]))
            who = await self.upstream.identity(tokens, str(pending["nonce"]))
        except UpstreamIdpError as exc:
            log.warning("upstream sign-in failed: %s", exc)
            return self._done(await self._client_error(req, ServerError("the identity provider sign-in failed")))
        reason = refusal(self.settings, who)
        if reason is not None:
            log.info("refused %s at the upstream callback: %s", who.subject, reason)
            return self._done(await self._client_error(req, AccessDenied(reason)))
        now = self.auth.clock()
        await self.vault.save(who, tokens, now)  # also creates/updates the local user
        await self.auth.store.save_consent(Consent(who.subject, req.client_id, req.scopes, req.resources, now))
        user = User(user_id=who.subject, username=who.username, password_hash="!", created_at=now)
        response = await self._code_redirect(req, user, now)
        s = self.settings
        if wants_connections(s, s.connection_providers, s.auth_mode):  # the connect page knows this browser's person
            await self._remember(response, who.subject, now)
        return self._done(response)

    async def _remember(self, response: Response, user_id: str, now: float) -> None:
        """The sign-in cookie the connect page reads: proxy mode has no password sign-in, so the
        person is known to a browser only after an upstream sign-in in it. Nothing else in proxy
        mode reads it (consent is still asked on every authorization)."""
        stored = await self.auth.store.get_user(user_id)
        if stored is not None:
            session = self.signer.dumps("session", {"uid": user_id, "at": now, "v": stored.session_version})
            max_age = self.settings.login_session_ttl
            set_cookie(response, SESSION_COOKIE, session, secure=self.secure, path=self.cookie_path, max_age=max_age)

    # -- steps -------------------------------------------------------------------------
    def _consent_page(self, request: Request, req: AuthorizationRequest) -> Response:
        scopes = [{**d, "unlocks": self.policy.unlocked_by(d["name"])} for d in describe_scopes(req.scopes)]
        token = csrf_token(request)
        response = render(
            "consent.html",
            form_targets=[form_action_source(req.redirect_uri), self.upstream_origin],
            client_name=req.client_name,
            unverified_client=req.unverified_client,
            username=None,
            upstream_name=self.upstream.upstream.name,
            redirect_host=req.redirect_host,
            loopback_warning=req.via_cimd and req.loopback_only,
            scopes=scopes,
            already=[],
            action=self.auth.urls.endpoint("consent"),
            csrf_token=token,
            request_token=self.signer.dumps("authz", req.to_dict()),
        )
        set_cookie(response, CSRF_COOKIE, token, secure=self.secure, path=self.cookie_path, max_age=None)
        return response

    async def _client_error(self, req: AuthorizationRequest, error: OAuthError, step: str = "sign-in") -> Response:
        """`error` to the client, and to the connection timeline as the failure of `step`."""
        await attempt_steps.browser_refused(self.auth, req, step, error)
        return error_redirect(self.auth, req.refused(error))

    def _done(self, response: Response) -> Response:
        response.delete_cookie(UPSTREAM_COOKIE, path=self.cookie_path)  # one use
        return response


@contextlib.asynccontextmanager
async def open_proxy_flow(rt: Runtime) -> AsyncIterator[ProxyFlow]:
    """The proxy-mode browser flow over the runtime's store, with its own HTTP client for the
    upstream (closed on exit). The upstream's discovery document is read once, here. While it
    is open, the core checks the upstream grant before rotating a refresh token (grant_check.py)."""
    settings = rt.settings
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
        upstream = await resolve(settings, http)
        vault = UpstreamVault(rt.stores.upstream_tokens, load_secret(settings), upstream.name, rt.auth.clock)
        client = UpstreamClient(settings, upstream, http)
        rt.auth.hooks.refresh_check = UpstreamGrantCheck(vault, client, upstream.name)
        try:
            yield ProxyFlow(rt.auth, rt.signer, settings, client, vault)
        finally:
            rt.auth.hooks.refresh_check = None  # its HTTP client closes now
