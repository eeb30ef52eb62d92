"""The connection timeline: every OAuth flow attempt recorded server-side as one story — the
client, the steps it reached, and the first failure with its reason and its fix — so that
"ChatGPT could not connect at 10:32" has an answer on the server (`authgate attempts`).

How a flow's steps become one row. HTTP gives the steps nothing in common but the client, and
one client id may run many flows at once (a CIMD client is one URL for all its users), so a
row is found by the most precise key each step knows:

* registration (DCR) knows only the client: it starts a row holding the new client id;
* the authorization request knows the client and its PKCE `code_challenge`, unique per flow:
  `flow_key` = SHA-256(client_id, code_challenge). Its first step adopts the client's
  registration row of the last hour if it has no flow yet (Claude registers anew for every
  connection), else starts a row. Sign-in and consent carry the same request (signed into the
  page), and the token request finds the challenge in the code it redeems;
* the code's exchange names the grant: `family_key` = SHA-256(family id), which the first
  MCP call (the token's `gid`) and the first refresh find the row by;
* a failure that knows only the client (a token request whose client authentication or code
  is refused before the code is found) joins that client's newest row of the last hour.

Only hashes serve as keys, and no row holds a secret, code, token, password or code_verifier:
the texts are built here from the client's metadata and the core's error descriptions, every
one cut to a bound. Cost and abuse: a step is queued, never waited for: one task writes the
queue in order, the notes that arrived while it wrote sharing its next transaction, so the AS
answers without a write of its own (a crash may lose the last few notes: diagnostics, not
security state). The MCP hot path asks an in-process set only when its verifier checked a
token afresh, and queues each grant's first call once. Failures are queued at most
`failures_per_minute` a minute per replica (an unknown client costs nobody a row past that),
the queue holds at most MAX_QUEUED notes, and the store keeps at most `max_rows` (oldest
deleted in the insert's transaction), purged after `retention` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import unquote_plus

from authgate.errors import OAuthError, StoreError
from authgate.store.models import AttemptNote, AuthorizationCode, Client, RefreshFamily
from authgate.store.protocols import AttemptStore

__all__ = ["AttemptRecorder", "ClientFacts", "TokenSeen", "explain", "family_key", "flow_key"]

log = logging.getLogger("authgate.attempts")

WINDOW = 3600.0  # a failure knowing only its client joins that client's attempt of the last hour
METADATA_WINDOW = 600.0  # metadata fetched from the same address this recently: the flow's first step
MAX_REMEMBERED = 10_000  # addresses and grants remembered in this process (least recent dropped)
MAX_QUEUED = 2_000  # notes waiting for the writer; more are dropped (counted in the log)
GATHER = 0.25  # seconds the writer lets notes gather before a transaction (one per batch)
MAX_TEXT, MAX_ID, MAX_NAME = 300, 512, 120

_PHRASE = {
    "register": "registration refused",
    "authorize": "authorization request refused",
    "sign-in": "sign-in refused",
    "consent": "authorization refused",
    "token": "token request refused",
    "refresh": "refresh refused",
}

# (what the core's error description says, the fix), first match wins
_FIXES: tuple[tuple[str, str], ...] = (
    (
        "unknown client_id",
        "the client must register again: clients unused for client_idle_days are pruned, "
        "and a client id from another server is unknown here",
    ),
    (
        "metadata document",
        "the server must be able to fetch the client's metadata document (CIMD): check its "
        "network and `authgate doctor --cimd-host-map`",
    ),
    (
        "redirect_uri is not registered",
        "the client must use a redirect URI it registered, or register again with this one",
    ),
    ("redirect_uri differs", "the token request must carry the redirect_uri of its authorization request"),
    (
        "code_verifier",
        "the client must send the code_verifier of this very authorization request (PKCE): it "
        "lost or mixed up its state between attempts",
    ),
    ("code_challenge", "the client must send a PKCE code_challenge with code_challenge_method=S256"),
    (
        "has expired",
        "the client must exchange the code within code_ttl seconds of the redirect (raise code_ttl for a slow client)",
    ),
    (
        "already used",
        "each code and refresh token works once: the client replayed one, so its grant was revoked; connect again",
    ),
    (
        "may not grant",
        "give the user a role that may grant these scopes (user_role_scopes, `authgate users "
        "roles`), or have the client ask for scopes the user may grant",
    ),
    ("denied", "the user chose Deny on the consent page; connect again to allow"),
    (
        "client authentication",
        "the client must authenticate as it registered (token_endpoint_auth_method) with its current secret",
    ),
    ("secret has expired", "the client must register again"),
    ("resource", "the client must ask for this server's MCP URL as `resource` (RFC 8707)"),
    ("scope", "the client must ask for scopes this server offers (see its metadata's scopes_supported)"),
    (
        "dynamic client registration is disabled",
        "enable registration_enabled, or create the client with `authgate clients add`",
    ),
    ("too many registrations", "the client registered too often from one address (registrations_per_minute)"),
)


def _cut(text: str | None, limit: int) -> str | None:
    """`text` on one line, printable, at most `limit` characters (an ellipsis when cut)."""
    if text is None:
        return None
    clean = (text if text.isprintable() else "".join(ch if ch.isprintable() else " " for ch in text)).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()


def flow_key(client_id: str | None, code_challenge: str | None) -> str | None:
    """The key of one authorization request's flow (its PKCE challenge is unique per flow)."""
    if not client_id or not code_challenge:
        return None
    return _hash("flow", client_id, code_challenge)


def family_key(family_id: str) -> str:
    return _hash("family", family_id)


def basic_client_id(authorization: str | None) -> str | None:
    """The client id of an `Authorization: Basic` header; the secret is never looked at again."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        user = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8").partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote_plus(user) or None


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """Who is connecting, as far as a step knows: every field bounded."""

    client_id: str | None = None
    name: str | None = None
    kind: str | None = None  # dcr, cimd, operator, static, unknown
    software: str | None = None

    @classmethod
    def of(cls, client: Client) -> ClientFacts:
        software = " ".join(
            str(client.metadata[k]) for k in ("software_id", "software_version") if client.metadata.get(k)
        )
        name = client.metadata.get("client_name")
        return cls(client.client_id, str(name) if name else None, client.source, software or None)

    @classmethod
    def named(cls, client_id: str | None, kind: str | None = None) -> ClientFacts:
        return cls(client_id or None, None, kind)


@dataclass(slots=True)
class TokenSeen:
    """What a token request showed before it succeeded or failed (filled by oauth/grants.py)."""

    client: Client | None = None
    code: AuthorizationCode | None = None  # the redeemed (or replayed) code's record
    family: RefreshFamily | None = None  # a refresh's grant, or the code's new one


def explain(step: str, error: OAuthError | str, registered: Iterable[str] = ()) -> tuple[str, str]:
    """The reason ("token request refused: …") and the fix for `error` at `step`."""
    description = error if isinstance(error, str) else (error.description or error.error)
    reason = f"{_PHRASE.get(step, step + ' refused')}: {description}"
    uris = list(registered)
    if uris and "redirect_uri" in description:
        reason += " — it registered " + ", ".join(uris[:3]) + (" …" if len(uris) > 3 else "")
    lowered = description.lower()
    fix = next((f for needle, f in _FIXES if needle in lowered), "see the server's log at this time")
    return _cut(reason, MAX_TEXT) or "", _cut(fix, MAX_TEXT) or ""


class AttemptRecorder:
    """Records the steps of OAuth flows in an `AttemptStore` (see the module docstring). Never
    raises: a store failure is logged and the flow goes on. `AttemptRecorder()` records nothing."""

    def __init__(
        self,
        store: AttemptStore | None = None,
        *,
        max_rows: int = 10_000,
        failures_per_minute: int = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.failures_per_minute = failures_per_minute
        self.clock = clock
        self._metadata: OrderedDict[str, float] = OrderedDict()  # address → when it fetched metadata
        self._first_calls: OrderedDict[str, None] = OrderedDict()  # grants whose first MCP call / refresh is recorded
        self._queue: deque[AttemptNote] = deque()  # written in order by one task, a batch per transaction
        self._writer: asyncio.Task[None] | None = None
        self._minute, self._failures, self._dropped = 0.0, 0, 0

    # -- steps reached ------------------------------------------------------------------------
    def metadata_fetched(self, address: str) -> None:
        """An address fetched the server's metadata: a flow it starts soon began there."""
        if self.store is None:
            return
        self._metadata[address] = self.clock()
        self._metadata.move_to_end(address)
        if len(self._metadata) > MAX_REMEMBERED:
            self._metadata.popitem(last=False)

    async def reached(
        self,
        *steps: str,
        client: ClientFacts | None = None,
        flow: str | None = None,
        family: str | None = None,
        address: str | None = None,
        join_only: bool = False,
    ) -> None:
        self._enqueue(self._note(steps, client, flow, family, address, join_only=join_only))

    async def failed(
        self,
        step: str,
        error: OAuthError | str,
        *,
        client: ClientFacts | None = None,
        flow: str | None = None,
        family: str | None = None,
        address: str | None = None,
        registered: Iterable[str] = (),
        reached: tuple[str, ...] = (),
        follow: bool = True,
    ) -> None:
        """A step refused. Without `flow` or `family` it joins the client's newest attempt
        (`follow`: only for a client that proved who it is; else it starts a row of its own)."""
        if self.store is None or not self._may_record_failure():
            return
        reason, fix = explain(step, error, registered)
        joins = follow and flow is None and family is None
        note = self._note(reached, client, flow, family, address, follow_client=joins)
        self._enqueue(_with_failure(note, step, reason, fix))

    def first_call(self, grant_id: object) -> None:
        """A token of grant `grant_id` reached the MCP endpoint: recorded once per grant and
        process (the gate asks this only when its verifier checked a token afresh)."""
        if self.store is None or not isinstance(grant_id, str) or not self._first_time(grant_id):
            return
        self._enqueue(self._note(("mcp",), None, None, family_key(grant_id), None, join_only=True))

    def _first_time(self, key: str) -> bool:
        """True the first time `key` (a grant's first MCP call, or its first refresh) is seen by
        this process, of the last MAX_REMEMBERED: one entry a grant, so the least recent goes
        (unbounded, it held ~250 bytes a flow for good: +22 MB of RSS over 100 k flows)."""
        if key in self._first_calls:
            return False
        self._first_calls[key] = None
        if len(self._first_calls) > MAX_REMEMBERED:
            self._first_calls.popitem(last=False)
        return True

    async def flush(self) -> None:
        """Wait until every note so far is written (tests; and `aclose`)."""
        while (writer := self._writer) is not None and not writer.done():
            await asyncio.shield(writer)

    async def aclose(self) -> None:
        """Write what is queued (at shutdown, before the store closes)."""
        await self.flush()

    # -- the token endpoint ---------------------------------------------------------------------
    async def token_done(self, grant_type: str | None, seen: TokenSeen) -> None:
        client = ClientFacts.of(seen.client) if seen.client is not None else None
        if grant_type == "authorization_code" and seen.code is not None:
            await self.reached(
                "token",
                client=client,
                flow=flow_key(seen.code.client_id, seen.code.code_challenge),
                family=family_key(seen.code.family_id),
            )
        elif grant_type == "refresh_token" and seen.family is not None:
            if self._first_time("refresh:" + seen.family.family_id):  # a grant's first refresh here
                await self.reached("refresh", client=client, family=family_key(seen.family.family_id), join_only=True)

    async def token_failed(
        self, grant_type: str | None, seen: TokenSeen, error: OAuthError, form_client_id: str | None
    ) -> None:
        step = "refresh" if grant_type == "refresh_token" else "token"
        client = ClientFacts.of(seen.client) if seen.client is not None else ClientFacts.named(form_client_id)
        flow = flow_key(seen.code.client_id, seen.code.code_challenge) if seen.code is not None else None
        family = family_key(seen.family.family_id) if seen.family is not None else None
        # a client that did not authenticate may be anyone naming it: never joins its story
        await self.failed(step, error, client=client, flow=flow, family=family, follow=seen.client is not None)

    # -- inside -------------------------------------------------------------------------------
    def _note(
        self,
        steps: Iterable[str],
        client: ClientFacts | None,
        flow: str | None,
        family: str | None,
        address: str | None,
        *,
        follow_client: bool = False,
        join_only: bool = False,
    ) -> AttemptNote:
        now = self.clock()
        reached = tuple(steps)
        if address is not None and (seen := self._metadata.pop(address, None)) is not None:
            if now - seen <= METADATA_WINDOW:
                reached = ("metadata", *reached)
        c = client or ClientFacts()
        return AttemptNote(
            at=now,
            steps=reached,
            client_id=_cut(c.client_id, MAX_ID),
            client_name=_cut(c.name, MAX_NAME),
            client_kind=_cut(c.kind, 16),
            software=_cut(c.software, MAX_NAME),
            flow_key=flow,
            family_key=family,
            follow_client=follow_client and c.client_id is not None,
            join_only=join_only,
        )

    def _may_record_failure(self) -> bool:
        """At most `failures_per_minute` failures a minute; the rest counted, logged once a minute."""
        now = self.clock()
        if now - self._minute >= 60:
            if self._dropped:
                log.warning(
                    "%d connection attempt steps not recorded in the last minute (failures over %d a minute, "
                    "or the writer behind)",
                    self._dropped,
                    self.failures_per_minute,
                )
            self._minute, self._failures, self._dropped = now, 0, 0
        if self._failures >= self.failures_per_minute:
            self._dropped += 1
            return False
        self._failures += 1
        return True

    def _enqueue(self, note: AttemptNote) -> None:
        """Queue `note` for the writer, which the step never waits for: the AS answers without
        a write of its own, and notes arriving while one is written share the next transaction."""
        if self.store is None:
            return
        if len(self._queue) >= MAX_QUEUED:
            self._dropped += 1  # logged with the failures over the budget
            return
        self._queue.append(note)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(self.store))

    async def _write(self, store: AttemptStore) -> None:
        await asyncio.sleep(GATHER)
        while self._queue:
            batch = list(self._queue)
            self._queue.clear()
            try:
                await store.record_attempts(batch, max_rows=self.max_rows, window=WINDOW)
            except StoreError as exc:
                log.warning("%d connection attempt steps not recorded: %s", len(batch), exc)


def _with_failure(note: AttemptNote, step: str, reason: str, fix: str) -> AttemptNote:
    return replace(note, failed_step=step, reason=reason, fix=fix)
