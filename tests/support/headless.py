"""A headless user agent that signs in and consents on authgate's HTML pages.

It plays the browser in an authorization code flow: GET the authorization URL, fill the
login form (`username`, `password`, hidden `csrf_token` and `request`), answer the consent
form with `decision=allow|deny`, and hand back the authorization response — the redirect to
the client's `redirect_uri` — *without* following it. Redirects inside authgate are
followed (bounded); cookies are kept, because the CSRF token is double-submitted
(`authgate_csrf` cookie + form field, see docs/http-contract.md).

Two levels of use:

* `HeadlessUserAgent.authorize(url, username, password)` runs the whole flow and returns an
  `AuthorizationResponse` (`code`, `state`, `iss`, or `error`).
* `open()` / `submit()` return one step at a time (a `Page` or an `AuthorizationResponse`),
  for tests that tamper with a form (drop the CSRF token, replay a request, …).

Sync (httpx 0.28) so it is usable from sync tests; `authorize_async` runs it in a worker
thread for async tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio.to_thread
import httpx

__all__ = [
    "AuthorizationResponse",
    "Form",
    "HeadlessFlowError",
    "HeadlessUserAgent",
    "Page",
    "authorize",
    "parse_forms",
]

_MAX_REDIRECTS = 10
_MAX_STEPS = 6
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, slots=True)
class Form:
    """One `<form>`: its absolute action, method, the values of its inputs (hidden ones
    included) and, per submit-button name, the values the buttons offer."""

    action: str
    method: str
    fields: dict[str, str]
    buttons: dict[str, list[str]] = field(default_factory=dict)

    def values(self, **overrides: str) -> dict[str, str]:
        data = dict(self.fields)
        data.update(overrides)
        return data


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML answer from authgate that is not a redirect to the client."""

    url: str
    status: int
    html: str
    forms: tuple[Form, ...]

    @property
    def text(self) -> str:
        """The visible text, whitespace-collapsed (for error messages and assertions)."""
        parser = _TextParser()
        parser.feed(self.html)
        return " ".join(" ".join(parser.chunks).split())

    def form_posting_to(self, suffix: str) -> Form | None:
        for form in self.forms:
            if urlsplit(form.action).path.endswith(suffix):
                return form
        return None

    @property
    def login_form(self) -> Form | None:
        return self.form_posting_to("/login") or next((f for f in self.forms if "password" in f.fields), None)

    @property
    def consent_form(self) -> Form | None:
        return self.form_posting_to("/consent") or next((f for f in self.forms if "decision" in f.buttons), None)


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """The redirect to the client's redirect URI (RFC 6749 §4.1.2 / §4.1.2.1), not followed."""

    status: int
    location: str
    params: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def iss(self) -> str | None:
        return self.params.get("iss")

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    @property
    def error_description(self) -> str | None:
        return self.params.get("error_description")


class HeadlessFlowError(AssertionError):
    """The flow did not reach the client's redirect URI; `page` is where it stopped."""

    def __init__(self, message: str, page: Page | None = None) -> None:
        detail = message
        if page is not None:
            detail += f" (HTTP {page.status} at {page.url}: {page.text[:500]!r})"
        super().__init__(detail)
        self.page = page


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[dict[str, str], dict[str, str], dict[str, list[str]]]] = []
        self._current: tuple[dict[str, str], dict[str, str], dict[str, list[str]]] | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = (a, {}, {})
            self.forms.append(self._current)
            return
        if self._current is None:
            return
        _, fields, buttons = self._current
        name = a.get("name")
        if not name:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                buttons.setdefault(name, []).append(a.get("value", ""))
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields[name] = a.get("value", "on")
            else:
                fields[name] = a.get("value", "")
        elif tag == "button":
            if a.get("type", "submit").lower() == "submit":
                buttons.setdefault(name, []).append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = name
            fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._current is not None and self._textarea is not None:
            self._current[1][self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._current = None


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def parse_forms(html: str, base_url: str) -> tuple[Form, ...]:
    parser = _FormParser()
    parser.feed(html)
    forms = []
    for attrs, fields, buttons in parser.forms:
        forms.append(
            Form(
                action=urljoin(base_url, attrs.get("action") or base_url),
                method=(attrs.get("method") or "get").lower(),
                fields=fields,
                buttons=buttons,
            )
        )
    return tuple(forms)


def _first_values(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    return (p.scheme, (p.hostname or "").lower(), port)


def _is_client_redirect(location: str, authgate_origin: tuple[str, str, int | None], redirect_uri: str | None) -> bool:
    """A redirect leaves authgate when it targets the request's `redirect_uri` (any port on
    loopback, RFC 8252 §7.3) or any other origin."""
    loc = urlsplit(location)
    if redirect_uri:
        want = urlsplit(redirect_uri)
        same_host = (loc.hostname or "").lower() == (want.hostname or "").lower()
        loopback = (want.hostname or "").lower() in _LOOPBACK
        if loc.scheme == want.scheme and same_host and loc.path == want.path and (loopback or loc.port == want.port):
            return True
    return _origin(location) != authgate_origin


class HeadlessUserAgent:
    """A cookie-keeping, redirect-bounded browser stand-in for authgate's pages."""

    def __init__(self, *, timeout: float = 10.0, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.Client(timeout=timeout, follow_redirects=False, headers=headers)
        self._authgate_origin: tuple[str, str, int | None] | None = None
        self._redirect_uri: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HeadlessUserAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cookies(self) -> httpx.Cookies:
        return self.http.cookies

    # -- one step at a time ---------------------------------------------------------------

    def open(self, authorization_url: str) -> Page | AuthorizationResponse:
        """GET the authorization URL; follow authgate-internal redirects only."""
        self._authgate_origin = _origin(authorization_url)
        self._redirect_uri = _first_values(urlsplit(authorization_url).query).get("redirect_uri")
        return self._settle(self.http.get(authorization_url))

    def submit(self, form: Form, **values: str) -> Page | AuthorizationResponse:
        """Submit `form` with its own fields (hidden ones included) overridden by `values`;
        to drop or forge a field, build the data yourself and call `submit_raw`."""
        return self.submit_raw(form.action, form.values(**values), method=form.method)

    def submit_raw(self, action: str, data: dict[str, str], *, method: str = "post") -> Page | AuthorizationResponse:
        if self._authgate_origin is None:
            self._authgate_origin = _origin(action)
        if method.lower() == "get":
            return self._settle(self.http.get(action, params=data))
        return self._settle(self.http.post(action, data=data))

    def _settle(self, response: httpx.Response) -> Page | AuthorizationResponse:
        assert self._authgate_origin is not None
        for _ in range(_MAX_REDIRECTS):
            location = response.headers.get("location")
            if not (300 <= response.status_code < 400 and location):
                break
            target = urljoin(str(response.url), location)
            if _is_client_redirect(target, self._authgate_origin, self._redirect_uri):
                parts = urlsplit(target)
                params = _first_values(parts.query)
                # Implicit-style fragments are never expected; record them so a test can see it.
                params.update({f"#{k}": v for k, v in _first_values(parts.fragment).items()})
                return AuthorizationResponse(response.status_code, target, params)
            response = self.http.get(target)
        else:
            raise HeadlessFlowError(f"more than {_MAX_REDIRECTS} redirects inside authgate")
        html = response.text
        return Page(str(response.url), response.status_code, html, parse_forms(html, str(response.url)))

    # -- the whole flow -------------------------------------------------------------------

    def authorize(
        self, authorization_url: str, username: str, password: str, *, decision: Literal["allow", "deny"] = "allow"
    ) -> AuthorizationResponse:
        """Sign in and answer the consent page; return the authorization response."""
        step = self.open(authorization_url)
        logged_in = False
        for _ in range(_MAX_STEPS):
            if isinstance(step, AuthorizationResponse):
                return step
            if step.status >= 400:
                raise HeadlessFlowError("authgate answered with an error page", step)
            login, consent = step.login_form, step.consent_form
            if login is not None:
                if logged_in:
                    raise HeadlessFlowError("login form shown again after signing in", step)
                logged_in = True
                step = self.submit(login, username=username, password=password)
            elif consent is not None:
                step = self.submit(consent, decision=decision)
            else:
                raise HeadlessFlowError("page has neither a login nor a consent form", step)
        raise HeadlessFlowError(f"no authorization response after {_MAX_STEPS} steps")

    async def authorize_async(
        self, authorization_url: str, username: str, password: str, *, decision: Literal["allow", "deny"] = "allow"
    ) -> AuthorizationResponse:
        return await anyio.to_thread.run_sync(
            lambda: self.authorize(authorization_url, username, password, decision=decision)
        )


def authorize(
    authorization_url: str, username: str, password: str, *, decision: Literal["allow", "deny"] = "allow"
) -> AuthorizationResponse:
    """One-shot flow with a fresh cookie jar."""
    with HeadlessUserAgent() as agent:
        return agent.authorize(authorization_url, username, password, decision=decision)
