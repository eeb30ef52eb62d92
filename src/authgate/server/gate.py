"""`McpGate`: the one ASGI callable between the server and the protected MCP app.

    request ─> log record, request id ─> body limit ─┬─ Origin: CORS ─┐
                                                     └────────────────┴─> Origin/Host ─> bearer token
               ─> (POST) the body read and parsed once ─> per-operation policy ─> the app
               <─ status, session, end noted; request id sent back; list results rewritten
    after the answer: audit events queued, the log line written

What used to be six middleware layers (request log, body limit, CORS, Origin/Host, bearer,
policy) is one callable composed of their checks, each a function of its own module
(`server/logs.py`, `server/body_limit.py`, `guard/origin.py`, `guard/bearer.py`,
`policy/enforcer.py`). Two reasons, both measured (docs/benchmarks.md): every layer allocated
its own closures and scope copies per request, and every suspension of the app resumed
through each layer's coroutine frame. Now the app runs one frame below the gate, and a
request allocates the `Exchange` (server/exchange.py), the log record, the body and its parse.

Browsers (a request with `Origin`) go through Starlette's CORS middleware first, which then
calls the gate's second entry point (`_behind_cors`); most MCP clients are not browsers. A
`StoreError` (a token lookup, the policy's audit) becomes the JSON-RPC answer of
`server/store_failures.py`. Long-lived streams (GET, `subscriptions/listen`) are counted per
caller (`gateway/streams.py`); the rest go to the app directly. Each admitted request is
kept in the drain (`gateway/drain.py`) for a stop to end cleanly: the exchange is its
`Flight`, so that costs no object, wrapper or frame of its own. With connections configured
the app is behind `ElicitationLayer` (server/elicitations.py), a pass-through unless a broker
is in the scope: without one the gate calls the app itself (`plain`), a frame less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from authgate import metering
from authgate.errors import StoreError
from authgate.gateway.body import PARSED_BODY_KEY
from authgate.gateway.drain import Drain
from authgate.gateway.errors import GatewayError, send_error
from authgate.gateway.streams import LISTEN, StreamLimit
from authgate.guard.bearer import BearerCheck, JsonAnswer, bearer_token
from authgate.guard.dpop import DpopCheck, dpop_token
from authgate.guard.identity import CONNECTION_BROKER_KEY, SCOPE_KEY, Identity
from authgate.guard.origin import OriginCheck
from authgate.guard.sdk_user import SdkUsers
from authgate.policy.enforcer import PolicyEnforcer
from authgate.server.body_limit import Counted, jsonrpc_413, refuse
from authgate.server.exchange import Exchange
from authgate.server.store_failures import mcp_answer

__all__ = ["McpGate"]

EXCHANGE_KEY = "authgate.exchange"  # the scope's way back to the exchange, behind CORS only


class McpGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: OriginCheck,
        bearer: BearerCheck,
        enforcer: PolicyEnforcer | None,
        streams: StreamLimit,
        max_body: int,
        base_path: str = "",
        sdk_users: SdkUsers | None = None,
        cors: Callable[[ASGIApp], ASGIApp] | None = None,
        first_call: Callable[[object], None] | None = None,
        dpop: DpopCheck | None = None,
        drain: Drain | None = None,
        plain: ASGIApp | None = None,
    ) -> None:
        """`drain`: where requests in flight are kept for a stop (gateway/drain.py; its own when
        None); `plain`: the app without the connection asks in front of it (`ElicitationLayer`,
        a pass-through when no broker is in the scope), taken then."""
        self.app = app
        self.plain = plain
        self.drain = drain if drain is not None else Drain()
        self.dpop = dpop  # the DPoP scheme (guard/dpop.py); None: only Bearer is understood
        self.origins = origins
        self.bearer = bearer
        self.enforcer = enforcer
        self.streams = streams  # the same app, behind the per-caller stream count
        self.max_body = max_body
        self.base_path = base_path
        self.sdk_users = sdk_users
        self.cors = cors(self._behind_cors) if cors is not None else None
        # a token's grant reached /mcp: the connection timeline, asked only when the verifier
        # checked a token afresh (oauth/attempts.py: once per grant, written in the background)
        self.first_call = first_call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = Exchange(scope, receive, send)
        answer: Send = ex.send
        counted: Send | None = None
        try:
            if ex.declared is not None and ex.declared > self.max_body:  # 413 before a byte is read
                await refuse(ex.send, ex.receive, jsonrpc_413(self.max_body))
                return
            if ex.chunked:
                answer = counted = self._counted(ex)
            if self.base_path:
                scope = _without_base(scope, self.base_path)
            if ex.origin is not None and self.cors is not None:  # a browser: CORS around the rest
                scope[EXCHANGE_KEY] = ex
                await self.cors(scope, ex.receive, answer)
            elif await self._admit(ex, scope, answer):  # _run with Drain.carry inlined: a frame less per suspension
                app, app_receive = self._fly(ex, scope, ex.receive, counted)
                drain, delivered = self.drain, False
                try:
                    try:
                        await app(scope, app_receive, ex.relay)
                    except asyncio.CancelledError:
                        if not ex.delivered():
                            raise  # cancelled by someone else too (the server's last resort)
                        delivered = True
                    finally:
                        drain.leave(ex)
                    if ex.error is not None:  # cut by a stop; most requests are not
                        await drain.settle(ex, delivered)
                finally:
                    self._answered(ex)
        except StoreError as exc:
            await mcp_answer(exc, scope, ex.status is not None, answer)
        finally:
            scope.pop(EXCHANGE_KEY, None)
            ex.finish()

    async def _behind_cors(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What `__call__` does after the body limit, for the CORS middleware to call."""
        ex: Exchange = scope[EXCHANGE_KEY]
        try:
            if await self._admit(ex, scope, send):
                await self._run(ex, scope, receive, send)
        except StoreError as exc:
            await mcp_answer(exc, scope, ex.status is not None, send)

    def _fly(self, ex: Exchange, scope: Scope, receive: Receive, onward: Send | None) -> tuple[ASGIApp, Receive]:
        """The request kept in the drain (gateway/drain.py) so a stop can end it, the exchange
        its flight; the app to call and what it reads. `onward`: the send after the app's (None:
        the exchange's own)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("the gate runs in a task (an ASGI server's)")
        parsed = scope.get(PARSED_BODY_KEY)
        ex.fly(
            task, scope, ex.listing[0] if ex.listing is not None else onward, parsed[1] if parsed is not None else None
        )
        self.drain.enter(ex)
        return self._target(ex, scope), receive if parsed is not None else ex.tap(receive)

    async def _run(self, ex: Exchange, scope: Scope, receive: Receive, onward: Send) -> None:
        """The app behind the CORS middleware (`__call__` does the same inline)."""
        app, app_receive = self._fly(ex, scope, receive, onward)
        try:
            await self.drain.carry(ex, app, scope, app_receive, ex.relay)
        finally:
            self._answered(ex)

    # -- the checks, in order --------------------------------------------------------------
    def _counted(self, ex: Exchange) -> Send:
        """A chunked body, counted as it streams (server/body_limit.py): past the limit the app
        hears a disconnect and the client gets the 413. The send to answer on."""
        counted = Counted(ex.channel, ex.send, self.max_body, jsonrpc_413(self.max_body))
        ex.through(counted.receive)
        return counted.send

    async def _admit(self, ex: Exchange, scope: Scope, send: Send) -> bool:
        """Origin/Host, the bearer token, and for a POST the policy's decision on its body;
        False once answered instead of the app."""
        refusal = self.origins.refusal(ex.origin, ex.host)
        if refusal is not None:
            if (meter := metering.meter) is not None:
                meter.auth("origin_refused" if refusal[0] == 403 else "host_refused")
            await JsonAnswer(*refusal)(scope, ex.receive, send)
            return False
        method = scope["method"]
        if method == "OPTIONS":  # a CORS preflight carries no token, and no operation
            return True
        token = bearer_token(ex.authorization)
        if token is not None:
            known = self.bearer.known(token)
            found = known or await self._identified(token)
            if isinstance(found, Identity) and (
                found.jkt is not None or (self.bearer.dpop_rules and self.bearer.refuses_bearer(found))
            ):
                found = self.bearer.not_bearer(found)  # RFC 9449 §7.2: a bound token needs its proof
            if (meter := metering.meter) is not None:
                _count_token(meter, found, known is not None)
            if not isinstance(found, Identity):
                await found(scope, ex.receive, send)
                return False
            self._hand_on(ex, scope, found)
        elif self.dpop is not None and (bound := dpop_token(ex.authorization)) is not None:
            if not await self._proved(ex, scope, send, self.dpop, bound):
                return False
        elif not await self._anonymous(ex, scope, method):
            if (meter := metering.meter) is not None:
                meter.auth("no_token")
            await self.bearer.missing(ex.authorization)(scope, ex.receive, send)
            return False
        admitted = method != "POST" or self.enforcer is None or await self._judged(ex, scope, self.enforcer, send)
        if admitted and (meter := metering.meter) is not None:
            meter.auth("allowed" if ex.identity is not None else "anonymous")
        return admitted

    async def _identified(self, token: str) -> Identity | ASGIApp:
        """The verifier's answer for a token not in its cache (its first use, or a re-check)."""
        found = await self.bearer.identify(token)
        if self.first_call is not None and isinstance(found, Identity):
            self.first_call(found.claims.get("gid"))
        return found

    async def _proved(self, ex: Exchange, scope: Scope, send: Send, dpop: DpopCheck, token: str) -> bool:
        """The DPoP scheme: the token, then this request's proof (guard/dpop.py)."""
        found = await dpop.identify(token, scope)
        if (meter := metering.meter) is not None:
            _count_token(meter, found, False)
        if not isinstance(found, Identity):
            await found(scope, ex.receive, send)
            return False
        if self.first_call is not None:
            self.first_call(found.claims.get("gid"))
        self._hand_on(ex, scope, found)
        return True

    def _hand_on(self, ex: Exchange, scope: Scope, identity: Identity) -> None:
        """Who is calling, for the app (and the SDK's own types for SDK apps) and the log."""
        ex.identity = scope[SCOPE_KEY] = identity
        if self.sdk_users is not None:
            scope.update(self.sdk_users.view(identity))
        ex.record["subject"], ex.record["client_id"] = identity.subject, identity.client_id

    async def _anonymous(self, ex: Exchange, scope: Scope, method: str) -> bool:
        """A POST without a token that the policy wants to judge (its body is then kept)."""
        if method != "POST" or self.enforcer is None or not self.enforcer.anonymous:
            return False
        raw = await self.enforcer.read_anonymous(ex.receive)
        if raw is None:
            return False
        ex.body = raw  # read: from now on it is replayed
        return self.enforcer.lets_in_anonymously(scope, raw)

    async def _judged(self, ex: Exchange, scope: Scope, enforcer: PolicyEnforcer, send: Send) -> bool:
        raw = ex.body if ex.body is not None else await enforcer.read(ex.channel, send)  # nothing to replay yet
        if raw is None:
            return False
        ex.body = raw  # replayed to the app
        body = enforcer.parse(raw)
        if isinstance(body, GatewayError):
            ex.body = None
            await send_error(send, body)
            return False
        if body is None:  # not JSON-RPC: nothing to authorize, the app answers it
            return True
        named = body.requests
        if len(named) == 1:  # most bodies: no strings joined
            op = named[0][1]
            ex.record["mcp_method"] = op.method
            if op.target:
                ex.record["mcp_target"] = op.target
        elif named:
            ex.record["mcp_method"] = ",".join(op.method for _, op in named)
            if targets := ",".join(op.target for _, op in named if op.target):
                ex.record["mcp_target"] = targets
        scope[PARSED_BODY_KEY] = (raw, body.decoded)  # the proxy behind reuses the parse
        refusal = enforcer.judge(scope, ex.identity, body, ex.mirrored)
        if refusal is not None:
            if (meter := metering.meter) is not None:
                meter.auth("operation_refused")
            ex.body = None
            await enforcer.refuse(scope, ex.identity, ex.at, body, refusal, send)
            return False
        ex.judged = body
        ex.listing = enforcer.tap(scope, ex.identity, body, send)
        return True

    # -- the app ---------------------------------------------------------------------------
    def _target(self, ex: Exchange, scope: Scope) -> ASGIApp:
        """The app, or the app behind the per-caller count of long-lived streams."""
        if scope["method"] == "GET":
            return self.streams
        if ex.judged is not None:
            for _m, op in ex.judged.requests:
                if op.method == LISTEN:
                    return self.streams
        if self.plain is not None and CONNECTION_BROKER_KEY not in scope:
            return self.plain
        return self.app

    def _answered(self, ex: Exchange) -> None:
        listing, ex.listing = ex.listing, None  # its send is the exchange's: no cycle left behind
        if ex.judged is None or self.enforcer is None:
            return
        self.enforcer.answered(
            ex.identity,
            ex.judged,
            at=ex.at,
            latency_ms=ex.latency_ms(),
            status=ex.status,
            session=ex.response_session,
            listing=listing,
        )


def _count_token(meter: metering.Meter, found: Identity | ASGIApp, cached: bool) -> None:
    """A bearer token met (server/metrics.py): its check's outcome, and the verdict of a refusal."""
    if isinstance(found, Identity):
        meter.token("cache_hit" if cached else "valid")
        return
    status = getattr(found, "status", getattr(found, "status_code", 503))
    outcome, decision = (
        ("invalid", "invalid_token")
        if status == 401
        else ("insufficient_scope", "insufficient_scope")
        if status == 403
        else ("unavailable", "unavailable")
    )
    meter.token(outcome)
    meter.auth(decision)


def _without_base(scope: Scope, base: str) -> Scope:
    """The scope as the app sees it under `base_path` (the path inside, the base as root)."""
    return {**scope, "path": scope["path"][len(base) :], "root_path": scope.get("root_path", "") + base}
