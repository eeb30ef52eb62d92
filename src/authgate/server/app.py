"""The ASGI application: OAuth endpoints, discovery documents and the guarded MCP app.

request ─┬─ {base}/mcp ──> the gate (server/gate.py: log, body limit, CORS, Origin/Host, bearer, policy) ─> the MCP app
         ├─ /.well-known/… , /token, /register, /revoke, /jwks.json ──> CORS (any origin, no cookies)
         └─ /authorize, /login, /consent, /admin…, /health ──> pages (proxy: /upstream/callback, no /login, /admin)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authgate import metering
from authgate.config.gateway import wants_connections
from authgate.config.settings import Settings
from authgate.errors import StoreError
from authgate.gateway.drain import Drain
from authgate.gateway.streams import StreamLimit
from authgate.guard.bearer import BearerCheck
from authgate.guard.dpop import DpopCheck, MemoryJtis
from authgate.guard.identity import CONNECTION_BROKER_KEY, UPSTREAM_ACCESS_KEY
from authgate.guard.origin import OriginCheck
from authgate.guard.sdk_user import SdkUsers
from authgate.guard.verifier import TokenVerifier
from authgate.oauth import dpop
from authgate.policy.layer import PolicyLayer
from authgate.server.body_limit import BodyLimit
from authgate.server.forwarded import TrustedProxies
from authgate.server.gate import McpGate
from authgate.server.heap import settle_after_startup
from authgate.server.logs import RequestLog
from authgate.server.responses import NoAnswer
from authgate.server.route_table import RouteTable
from authgate.server.routes.admin import ADMIN_PAGES, AdminPages, admin_routes
from authgate.server.routes.authorize import BrowserFlow
from authgate.server.routes.discovery import Discovery
from authgate.server.routes.endpoints import Endpoints
from authgate.server.runtime import Runtime, housekeeping, load_secret, open_runtime
from authgate.server.store_failures import oauth_answer, page_answer
from authgate.store.durability import answer_after_flush

MCP_EXPOSED = ["WWW-Authenticate", "Mcp-Session-Id", "MCP-Protocol-Version", "DPoP-Nonce"]  # RFC 9449 §8
# answered in HTML (connect: server/routes/connect.py, imported only when providers are configured)
PAGES = frozenset({"authorize", "login", "consent", "upstream_callback", "connect", "connect_callback"}) | ADMIN_PAGES


class AuthgateApp:
    """Pure ASGI dispatcher. Handlers are bound at start-up, once the store is open."""

    def __init__(self, settings: Settings, mcp_app: ASGIApp, *, sdk_user: bool = True) -> None:
        """`sdk_user`: hand the app the caller as the `mcp` SDK's types too (guard/sdk_user.py);
        off for the gateways, which never read them and so never import the SDK for them."""
        self.settings = settings
        self.mcp_app = mcp_app
        self.sdk_user = sdk_user
        own = getattr(mcp_app, "drain", None)  # the stdio bridge's, which ends its listen streams itself
        self.drain = own if isinstance(own, Drain) else Drain()  # a stop drains /mcp (gateway/drain.py)
        self.runtime: Runtime | None = None
        self.policy: PolicyLayer | None = None
        urls = settings.urls
        self.mcp_path = urls.base_path + urls.mcp_path
        self.router = Starlette(routes=self._routes(), lifespan=self._metered_lifespan)
        self.public_api = CORSMiddleware(
            self.router,
            allow_origins=["*"],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "MCP-Protocol-Version", "DPoP"],
            expose_headers=["WWW-Authenticate", "DPoP-Nonce"],
            max_age=3600,
        )
        # the AS's routes without Starlette's per-request layers where the outcome is the same
        self.routes = RouteTable(self.router, self.public_api, set(self._public_paths()))
        self.protected: McpGate | None = None  # the MCP endpoint's one layer, made at start-up
        self.upstream_access: object | None = None  # proxy mode: the callers' upstream IdP tokens
        self.connection_broker: Any = None  # third-party connections (authgate.connections), when configured
        # every body bounded per route before anything reads it (server/body_limit.py)
        bounded = BodyLimit(self.routes, mcp_path=self.mcp_path, mcp_max_bytes=settings.mcp_max_body_bytes)
        self._logged = RequestLog(bounded)  # outermost: request id and the access log
        self.proxies = TrustedProxies(settings.trusted_proxies, settings.forwarded_header)
        self.handlers: dict[str, Any] | None = None
        self.metrics_socket: Any = None  # metrics_listen's, bound now: a busy port fails before start-up
        if settings.metrics_listen is not None:
            from authgate.server.metrics_http import bound_socket

            self.metrics_socket = bound_socket(settings.metrics_listen)

    def _public_paths(self) -> list[str]:
        u = self.settings.urls
        return [
            u.local_path(x)
            for x in (
                u.as_metadata_url,
                u.prm_url,
                u.prm_root_url,
                u.endpoint("token"),
                u.endpoint("register"),
                u.endpoint("revoke"),
                u.endpoint("jwks.json"),
            )
        ]

    def _routes(self) -> list[Route]:
        u = self.settings.urls
        b = u.base_path
        paths: list[tuple[str, str, list[str]]] = [
            (u.local_path(u.as_metadata_url), "as_metadata", ["GET"]),
            (u.local_path(u.prm_url), "prm", ["GET"]),
            (u.local_path(u.prm_root_url), "prm", ["GET"]),
            (f"{b}/jwks.json", "jwks", ["GET"]),
            (f"{b}/authorize", "authorize", ["GET"]),
            (f"{b}/login", "login", ["POST"]),
            (f"{b}/consent", "consent", ["POST"]),
            (f"{b}/token", "token", ["POST"]),
            (f"{b}/register", "register", ["POST"]),
            (f"{b}/register/{{client_id}}", "registration", ["GET", "PUT", "DELETE"]),  # RFC 7592
            (f"{b}/revoke", "revoke", ["POST"]),
            (f"{b}/health", "health", ["GET"]),
            (f"{b}/health/ready", "ready", ["GET"]),
        ]
        if b:  # the PRM of the base URL itself, for clients that strip the MCP path
            paths.append((u.local_path(u.prm_root_url) + b, "prm", ["GET"]))
        if self.settings.auth_mode == "external":  # the IdP is the authorization server: 404 for the rest
            from authgate.idp.backend import served_routes  # external mode only: httpx and the IdP clients

            served = served_routes(self.settings)
            paths = [p for p in paths if p[1] in served]
        if self.settings.auth_mode == "proxy":  # sign-in at the upstream IdP instead of /login
            paths = [p for p in paths if p[1] != "login"] + [(f"{b}/upstream/callback", "upstream_callback", ["GET"])]
        if self.settings.auth_mode == "embedded" and self.settings.admin_page:  # people sign in here (routes/admin.py)
            paths += admin_routes(b)
        if wants_connections(self.settings, self.settings.connection_providers, self.settings.auth_mode):
            from authgate.server.routes.connect import connect_routes  # the connections core, httpx

            paths += connect_routes(b)
            from authgate.outbound.client_document import PATH, document_url

            if document_url(u.base):  # authgate's own CIMD document: https only (outbound/client_document.py)
                paths.append((f"{b}{PATH}", "client_metadata", ["GET"]))
        if self.settings.metrics_on_main:  # only with metrics_token (config/metrics.py)
            paths.append((f"{b}/metrics", "metrics", ["GET"]))
        return [Route(path, self._handler(name), methods=methods) for path, name, methods in paths]

    def _handler(self, name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            if self.handlers is None:
                raise RuntimeError("authgate is not started (lifespan did not run)")
            try:
                # its writes share one flush to the disk, before the answer (store/durability.py)
                async with answer_after_flush():
                    response: Response = await self.handlers[name](request)
            except StoreError as exc:  # 503 + Retry-After when the database cannot answer now
                response = (page_answer if name in PAGES else oauth_answer)(exc, request)
            except ClientDisconnect:  # gone mid-body (or its body fell silent: server/http_protocol.py)
                return NoAnswer()
            if (meter := metering.meter) is not None:
                meter.flow(name, request, response)  # the OAuth flow's steps (server/metrics.py)
            return response

        return endpoint

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self.settings.auth_mode == "external":  # the IdP issues tokens: no store, keys or pages
            ready = getattr(self.mcp_app, "check_ready", None)  # the gateway's upstream, if any
            from authgate.idp.backend import open_external

            async with open_external(self.settings, upstream_ready=ready) as backend:
                self.handlers = backend.handlers()
                self.protected = self._guarded(backend.verifier)
                try:
                    async with self._inner_lifespan():
                        self._started()
                        yield
                finally:
                    self.handlers = None
            return
        proxy = self.settings.auth_mode == "proxy"  # people sign in at the upstream IdP
        self.runtime = rt = await open_runtime(self.settings)
        stack = contextlib.AsyncExitStack()
        discovery = Discovery(rt.auth, rt.settings, upstream_ready=getattr(self.mcp_app, "check_ready", None))
        if proxy:  # proxy mode only: httpx and the upstream IdP client
            from authgate.server.routes.proxy_mode import open_proxy_flow

            flow: BrowserFlow = await stack.enter_async_context(open_proxy_flow(rt))
            stack.callback(setattr, self, "upstream_access", None)
            self.upstream_access = getattr(flow, "access", None)  # for the app: upstream_token(ctx)
        else:
            flow = BrowserFlow(rt.auth, rt.signer, rt.settings)
        endpoints = Endpoints(rt.auth, rt.settings)
        self.handlers = {
            "as_metadata": discovery.as_metadata,
            "prm": discovery.prm,
            "jwks": discovery.jwks,
            "client_metadata": discovery.client_metadata,
            "health": discovery.health,
            "ready": discovery.ready,
            "authorize": flow.authorize,
            "login": flow.login,
            "consent": flow.consent,
            "token": endpoints.token,
            "register": endpoints.register,
            "registration": endpoints.registration,
            "revoke": endpoints.revoke,
            "upstream_callback": getattr(flow, "callback", flow.authorize),
        }
        if not proxy:
            admin = AdminPages(rt.auth, rt.stores, rt.signer, rt.settings)
            self.handlers.update(admin.handlers())
        if wants_connections(self.settings, self.settings.connection_providers, self.settings.auth_mode):
            from authgate.server.routes.connect import ConnectPages, broker_from

            self.connection_broker = broker = broker_from(rt)
            stack.push_async_callback(broker.aclose)
            stack.callback(setattr, self, "connection_broker", None)
            self.handlers.update(ConnectPages(rt, broker).handlers())
            if not proxy:
                admin.connections = broker  # the admin page lists and revokes them
        self.protected = self._guarded(rt.verifier)
        self._attach_store(rt)
        chores = asyncio.create_task(housekeeping(self.settings, rt.stores))
        try:
            async with self._inner_lifespan():
                self._started()
                yield
        finally:
            chores.cancel()
            self.handlers = None
            await stack.aclose()
            if self.policy is not None:
                await self.policy.aclose()  # the audit events still queued, before the store closes
            await self.runtime.close()

    @contextlib.asynccontextmanager
    async def _metered_lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """The lifespan, with the metrics around it when they are on (server/metrics_http.py)."""
        if not self.settings.metrics_enabled:
            async with self._lifespan(app):
                yield
            return
        from authgate.server.metrics_http import serving_metrics

        async with serving_metrics(self, self._lifespan(app)):
            yield

    def _attach_store(self, rt: Runtime) -> None:
        """Hand the stores to an MCP app that keeps state in authgate's database (the gateway's
        session bindings, so any replica serves any session; housekeeping purges them)."""
        attach = getattr(self.mcp_app, "attach_store", None)
        if attach is not None:
            attach(rt.stores)

    def _started(self) -> None:
        if self.settings.gc_tuning:
            settle_after_startup()

    def _inner_lifespan(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The protected app's own lifespan (the SDK's session manager), run inside authgate's."""
        inner = getattr(getattr(self.mcp_app, "router", self.mcp_app), "lifespan_context", None)
        return inner(self.mcp_app) if inner else contextlib.nullcontext()

    def _guarded(self, verifier: TokenVerifier) -> McpGate:
        urls = self.settings.urls
        origins = [urls.origin, *self.settings.allowed_origins]
        # per-operation policy and audit (authgate.policy) between the bearer check and the app
        self.policy = policy = PolicyLayer(self.settings, self.runtime.stores.audit if self.runtime else None)
        asking = self._asking(self.mcp_app)  # the gate keeps requests in the drain itself (gateway/drain.py)
        loopback = not urls.secure_cookies
        cors = functools.partial(
            CORSMiddleware,
            allow_origins=[] if "*" not in origins else ["*"],
            allow_origin_regex=_origin_regex(origins, loopback),
            # "*" mirrors what the preflight asks: MCP-Protocol-Version,
            # Mcp-Session-Id, Last-Event-ID, Mcp-Method, Mcp-Name, Mcp-Param-*, …
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=MCP_EXPOSED,
            max_age=3600,
        )
        gate: Callable[..., McpGate] = McpGate
        if self.settings.otel_enabled:  # spans around the checks and the upstream calls (server/tracing.py)
            from authgate.server.tracing import traced_gate

            gate = traced_gate(self.settings, self.mcp_app, self.mcp_path)
        bearer = BearerCheck(
            verifier,
            resource_metadata=urls.prm_url,
            scopes=tuple(self.settings.scopes),
            dpop_algs=dpop.ALGS,
            dpop_only=self.settings.dpop_required,
            dpop_scopes=frozenset(self.settings.dpop_required_scopes),
        )
        return gate(
            asking,
            origins=OriginCheck(public_host=urls.origin.split("://", 1)[1], allowed_origins=origins),
            bearer=bearer,
            dpop=self._dpop(bearer),
            enforcer=policy.enforcer,
            # streams per caller counted once the policy has parsed the body (gateway/streams.py)
            streams=StreamLimit(asking, per_caller=self.settings.max_streams_per_caller),
            max_body=self.settings.mcp_max_body_bytes,
            base_path=urls.base_path,
            sdk_users=SdkUsers() if self.sdk_user else None,
            cors=cors,  # only requests with an Origin (browsers) go through it
            first_call=self.runtime.auth.attempts.first_call if self.runtime else None,  # oauth/attempts.py
            drain=self.drain,
            plain=self.mcp_app if asking is not self.mcp_app else None,  # no broker in the scope: no asks
        )

    def _asking(self, app: ASGIApp) -> ASGIApp:
        """With connections: the layer that asks clients to connect (server/elicitations.py)."""
        if self.connection_broker is None or self.runtime is None:
            return app
        from authgate.server.elicitations import ElicitationLayer

        s = self.settings
        return ElicitationLayer(
            app,
            secret=load_secret(s),
            ttl=s.connection_link_ttl,
            tools=dict(s.connection_tools),
            max_body=s.mcp_max_body_bytes,
            gateway=s.upstream is not None,
        )

    def _dpop(self, bearer: BearerCheck) -> DpopCheck:
        """The DPoP scheme on /mcp (guard/dpop.py): proofs' jtis in the shared store; external
        mode has none, so this process's memory, and nonces under a key of this process."""
        settings = self.settings
        if self.runtime is None:
            key = os.urandom(32) if settings.dpop_nonce else None
            return DpopCheck(
                bearer, MemoryJtis(), url=settings.urls.resource, nonce_key=key, max_age=settings.dpop_proof_max_age
            )
        auth = self.runtime.auth
        return DpopCheck(
            bearer,
            auth.store,
            url=settings.urls.resource,
            nonce_key=auth.keys.nonce_key if settings.dpop_nonce else None,
            max_age=settings.dpop_proof_max_age,
            clock=auth.clock,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.proxies.resolve(scope)  # the one place the client address is decided (server/forwarded.py)
        if scope["type"] == "http" and self._is_mcp(scope.get("path", "")):
            if self.protected is None:
                raise RuntimeError("authgate is not started (lifespan did not run)")
            if self.upstream_access is not None:  # proxy mode (guard/identity.py)
                scope[UPSTREAM_ACCESS_KEY] = self.upstream_access
            # authgate.connections (guard/identity.py); a gateway to a plain upstream needs none
            if self.connection_broker is not None and getattr(self.mcp_app, "needs_broker", True):
                scope[CONNECTION_BROKER_KEY] = self.connection_broker
            await self.protected(scope, receive, send)  # the gate: log, limits and checks in one layer
        else:
            await self._logged(scope, receive, send)

    def _is_mcp(self, path: str) -> bool:
        return path == self.mcp_path or path.startswith(self.mcp_path + "/")


def _origin_regex(origins: list[str], loopback: bool) -> str | None:
    alts = [re.escape(o.rstrip("/")) for o in origins if o != "*"]
    if loopback:
        alts.append(r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?")
    return "^(" + "|".join(alts) + ")$" if alts else None


def build_app(settings: Settings, mcp_app: ASGIApp | None = None) -> AuthgateApp:
    if mcp_app is None and settings.upstream is not None:
        from authgate.gateway import proxy_from_settings

        return AuthgateApp(settings, proxy_from_settings(settings), sdk_user=False)
    if mcp_app is None and settings.upstream_command:  # `authgate serve -- CMD ARGS…`
        from authgate.gateway.stdio.bridge import bridge_from_settings

        return AuthgateApp(settings, bridge_from_settings(settings), sdk_user=False)
    if mcp_app is None:  # no upstream: the built-in knowledge base (which also has `whoami`)
        from authgate.kb.server import build_app as build_kb
        from authgate.mcpapp.negotiation import ContentNegotiation

        mcp_app = ContentNegotiation(build_kb(settings.data_dir))
    return AuthgateApp(settings, mcp_app)
