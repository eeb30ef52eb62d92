"""The authorization server routes' side of the connection timeline (`oauth/attempts.py`):
what each HTTP step knows — the client's address, the query of a refused authorization
request, the pending request signed into a page — in the recorder's terms. One call per step
from the routes; the recorder never raises."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from authgate.errors import OAuthError
from authgate.oauth.attempts import ClientFacts, flow_key
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import AuthorizationRequest
from authgate.oauth.ratelimit import address_key
from authgate.server.forwarded import client_host

__all__ = ["authorize_reached", "authorize_refused", "browser_refused", "browser_step", "metadata", "registered"]


def _address(request: Request) -> str:
    return address_key(client_host(request.scope))


def metadata(auth: Authority, request: Request) -> None:
    """A metadata document was fetched: the first step of a flow this address starts soon."""
    auth.attempts.metadata_fetched(_address(request))


async def registered(
    auth: Authority, request: Request, body: Any, client_id: str | None, error: OAuthError | None
) -> None:
    """A DCR registration: the client it made, or why none was made."""
    body = body if isinstance(body, dict) else {}
    software = " ".join(str(body[k]) for k in ("software_id", "software_version") if isinstance(body.get(k), str))
    name = body.get("client_name") if isinstance(body.get("client_name"), str) else None
    facts = ClientFacts(client_id, name, "dcr", software or None)
    if error is None:
        await auth.attempts.reached("register", client=facts, address=_address(request))
    else:
        await auth.attempts.failed("register", error, client=facts, address=_address(request))


async def authorize_reached(auth: Authority, request: Request, req: AuthorizationRequest) -> None:
    steps = ("register", "authorize") if req.via_cimd else ("authorize",)  # a CIMD client registers here
    # the kind from what validation found (no second read): DCR and CIMD clients describe themselves
    kind = "cimd" if req.via_cimd else "dcr" if req.unverified_client else "operator"
    await auth.attempts.reached(
        *steps,
        client=ClientFacts(req.client_id, req.client_name, kind),
        flow=flow_key(req.client_id, req.code_challenge),
        address=_address(request),
    )


async def authorize_refused(auth: Authority, request: Request, error: OAuthError) -> None:
    """A refused authorization request, from its query: the client it named (known or not),
    and for a redirect URI it did not register, the ones it did."""
    query = request.query_params
    client_id = query.get("client_id") or None
    registered_uris: list[str] = []
    if client_id is None:
        facts = ClientFacts()
    elif auth.cimd is not None and auth.cimd.handles(client_id):
        facts = ClientFacts(client_id, None, "cimd")
    else:
        client = await auth.store.get_client(client_id)
        facts = ClientFacts.of(client) if client is not None else ClientFacts(client_id, None, "unknown")
        registered_uris = client.redirect_uris if client is not None else []
    await auth.attempts.failed(
        "authorize",
        error,
        client=facts,
        flow=flow_key(client_id, query.get("code_challenge")),
        address=_address(request),
        registered=registered_uris,
    )


async def browser_step(auth: Authority, req: AuthorizationRequest, *steps: str) -> None:
    """Sign-in, consent (the code issued) of a pending authorization request."""
    await auth.attempts.reached(*steps, flow=flow_key(req.client_id, req.code_challenge))


async def browser_refused(auth: Authority, req: AuthorizationRequest, step: str, error: OAuthError) -> None:
    await auth.attempts.failed(
        step, error, client=ClientFacts(req.client_id), flow=flow_key(req.client_id, req.code_challenge)
    )
