"""Back-channel endpoints: /token, /register, /register/{client_id} (RFC 7592), /revoke (JSON in/out, no cookies)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from authgate import json_depth
from authgate.config.settings import Settings
from authgate.errors import (
    InvalidClientMetadata,
    InvalidDpopProof,
    InvalidRequest,
    OAuthError,
    SlowDown,
    TemporarilyUnavailable,
)
from authgate.oauth import grants, registration, registration_management, revocation
from authgate.oauth.attempts import TokenSeen, basic_client_id
from authgate.oauth.authority import Authority
from authgate.oauth.ratelimit import address_key
from authgate.server.forms import read_form
from authgate.server.forwarded import client_host
from authgate.server.responses import json_response, oauth_error
from authgate.server.routes import attempt_steps
from authgate.store.models import Client

MAX_BODY = 64 * 1024
MAX_FIELD = 32 * 1024  # one form field; the whole body is bounded by server/body_limit.py


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")  # RFC 6749 §3.2
    try:
        form = await read_form(request, max_files=0, max_fields=50, max_part_size=MAX_FIELD)
    except HTTPException as exc:  # python-multipart's limits: still JSON (RFC 6749 §5.2, RFC 7009 §2.2.1)
        raise InvalidRequest(f"the form body cannot be read: {exc.detail}") from None
    single: dict[str, str] = {}
    resources: list[str] = []
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise InvalidRequest("file uploads are not accepted")
        if key == "resource":
            resources.append(value)
        elif key in single:
            raise InvalidRequest(f"parameter {key} is repeated")  # RFC 6749 §3.2
        else:
            single[key] = value
    return single, resources


async def _json_object(request: Request) -> dict[str, Any]:
    """A registration request's JSON object (RFC 7591 §3.1), bounded in size and depth."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidClientMetadata("registration request is too large")
    try:
        body = json_depth.loads(raw)
    except json_depth.TooDeep as exc:
        raise InvalidClientMetadata(str(exc)) from None
    except ValueError:
        raise InvalidClientMetadata("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidClientMetadata("the body must be a JSON object")
    return body


class Endpoints:
    def __init__(self, auth: Authority, settings: Settings) -> None:
        self.auth = auth
        self.settings = settings  # registration: its grant types, the client pools

    async def token(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        form: dict[str, str] = {}
        seen = TokenSeen()  # what the request showed, for the connection timeline
        try:
            form, resources = await _form(request)
            proofs = request.headers.getlist("dpop")
            if len(proofs) > 1:  # RFC 9449 §4.3 item 1
                raise InvalidDpopProof("send exactly one DPoP header")
            body = await grants.token(self.auth, form, resources, authorization, seen, proofs[0] if proofs else None)
        except OAuthError as exc:
            client_id = form.get("client_id") or basic_client_id(authorization)
            await self.auth.attempts.token_failed(form.get("grant_type"), seen, exc, client_id)
            return oauth_error(exc, basic_attempted=bool(authorization))
        await self.auth.attempts.token_done(form.get("grant_type"), seen)
        return json_response(body)

    async def revoke(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        try:
            form, _ = await _form(request)
            await revocation.revoke(self.auth, form, authorization)
        except OAuthError as exc:
            return oauth_error(exc, basic_attempted=bool(authorization))
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    async def register(self, request: Request) -> Response:
        body: list[Any] = []  # the request's JSON once read, for the connection timeline
        try:
            response, client_id = await self._register(request, body)
        except OAuthError as exc:
            await attempt_steps.registered(self.auth, request, body[0] if body else None, None, exc)
            return oauth_error(exc)
        await attempt_steps.registered(self.auth, request, body[0], client_id, None)
        return response

    async def _register(self, request: Request, seen: list[Any]) -> tuple[Response, str]:
        settings = self.settings
        if not settings.registration_enabled:
            raise InvalidRequest("dynamic client registration is disabled on this server")
        source = address_key(client_host(request.scope))  # IPv6 by /64
        if not await self.auth.registrations.hit(source):
            raise SlowDown(
                "too many registrations from this address; retry later",
                retry_after=max(1, await self.auth.registrations.retry_after(source)),
            )
        body = await _json_object(request)
        seen.append(body)
        now = self.auth.clock()
        base = self.auth.urls.endpoint("register")  # RFC 7592: each client managed below it
        client, response = registration.register(body, now, settings.dcr_grant_types, management_base=base)
        await self._store_client(client, now)
        return json_response(response, 201), client.client_id

    async def registration(self, request: Request) -> Response:
        """RFC 7592 client configuration endpoint: GET reads, PUT replaces, DELETE removes."""
        client_id = str(request.path_params["client_id"])
        authorization = request.headers.get("authorization")
        base = self.auth.urls.endpoint("register")
        try:
            if request.method == "DELETE":
                await registration_management.delete(self.auth, client_id, authorization)
                return Response(status_code=204, headers={"Cache-Control": "no-store"})
            if request.method == "PUT":
                body = await _json_object(request)
                answer = await registration_management.update(
                    self.auth, client_id, authorization, body, base, self.settings.dcr_grant_types
                )
            else:
                answer = await registration_management.read(self.auth, client_id, authorization, base)
        except OAuthError as exc:
            return oauth_error(exc)
        return json_response(answer)

    async def _store_client(self, client: Client, now: float) -> None:
        """A new client joins the unverified pool, which drops its oldest when full, so
        registrations from anywhere cannot lock out the next one; only clients users have
        consented to (or an operator made) count against `max_clients`."""
        settings, store = self.settings, self.auth.store
        for attempt in range(2):
            if await store.add_client(
                client, max_clients=settings.max_clients, unverified_pool=settings.max_unverified_clients
            ):
                return
            if attempt == 0:
                await store.prune_clients(now - settings.client_idle_days * 86400, now)
        raise TemporarilyUnavailable(
            f"this server holds its maximum of {settings.max_clients} clients that users have consented "
            "to or an operator created; an operator must raise max_clients or remove clients"
        )
