"""Getting an authorization code without a browser, or with the user's.

* `form_sign_in`: plays the browser on HTML sign-in and consent forms (authgate's own, see
  docs/http-contract.md, and simple username/password pages of other servers). It keeps
  cookies (CSRF tokens are double-submitted), follows redirects until one lands on the
  client's redirect URI, and reads the code from that `Location` header: the redirect itself
  is never followed (ChatGPT's and claude.ai's callbacks are real services).
* `loopback_sign_in` (`--interactive`): prints the URL and waits, bounded, for the user's
  browser to arrive at the client's loopback redirect URI.

The password is used for the one POST of the sign-in form and is never stored or printed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, TextIO
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import httpx

from authgate.doctor.findings import excerpt
from authgate.doctor.profiles import LOOPBACK_HOSTS
from authgate.errors import AuthgateError, Unreachable
from authgate.httpx_errors import translated

if TYPE_CHECKING:
    from urllib.request import Request

_MAX_STEPS = 12
_ALLOW = ("allow", "approve", "accept", "authorize", "yes", "consent", "grant")
_USER_NAMES = ("username", "user", "login", "email", "name")
_HIDDEN = ("style", "script", "title", "footer", "nav")  # not what the page says, its chrome
# Elements that end a sentence on screen: their texts are joined as sentences, not run together
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "main", "section", "header", "form"}
    | {"label", "table", "tr", "td", "th", "dd", "dt", "article", "blockquote", "pre"}
)
_BREAK = "\x00"  # a block boundary in the collected text (never in a page's own text)
_SENTENCE_END = (".", "!", "?", ":", ";", "…")
_NEVER_FOLLOW = ("chatgpt.com", "claude.ai", "claude.com")


class _LoopbackCookiePolicy(DefaultCookiePolicy):
    """A Secure cookie from a plain-http loopback server is kept as a plain one: browsers send it
    back there (loopback is a secure context), httpx would not. Keycloak marks its login cookies
    Secure also on http://127.0.0.1 ("Restart login cookie not found" at the password POST)."""

    def set_ok(self, cookie: Cookie, request: Request) -> bool:
        if (urlsplit(request.get_full_url()).hostname or "") in LOOPBACK_HOSTS:
            cookie.secure = False
        return super().set_ok(cookie, request)


class SignInError(AuthgateError):
    """The sign-in could not be played: `seen` says what the doctor met, `fix` what to do."""

    def __init__(self, seen: str, fix: str) -> None:
        super().__init__(seen)
        self.seen, self.fix = seen, fix


@dataclass(frozen=True, slots=True)
class SignInResult:
    params: dict[str, str]
    location: str


@dataclass(slots=True)
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.forms: list[_Form] = []
        self.text: list[str] = []
        self._hidden = 0  # inside <style>/<script>/<title>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in _HIDDEN:
            self._hidden += 1
        if tag in _BLOCKS:
            self.text.append(_BREAK)
        if tag == "form":
            self.forms.append(_Form(urljoin(self.base, a.get("action") or self.base), a.get("method", "get").lower()))
        elif self.forms and (name := a.get("name")):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            if tag == "button" or kind in ("submit", "image"):
                self.forms[-1].buttons.append((name, a.get("value", "")))
            elif tag == "input" and (kind not in ("checkbox", "radio") or "checked" in a):
                self.forms[-1].fields[name], self.forms[-1].types[name] = a.get("value", ""), kind

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self._hidden:
            self._hidden -= 1
        if tag in _BLOCKS:
            self.text.append(_BREAK)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def lands_on(url: str, redirect_uri: str) -> bool:
    """Whether `url` is the client's redirect URI (any port on loopback, RFC 8252 §7.3)."""
    got, want = urlsplit(url), urlsplit(redirect_uri)
    loopback = (want.hostname or "") in LOOPBACK_HOSTS
    return (got.scheme, got.hostname, got.path) == (want.scheme, want.hostname, want.path) and (
        loopback or got.port == want.port
    )


def params_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _sentence(block: str) -> str:
    first = block.split(" ", 1)[0]
    if first.replace("'", "").isalpha() and first.islower():  # not `client_id`, `iOS`, a URL
        block = block[0].upper() + block[1:]
    return block if block.endswith(_SENTENCE_END) else block + "."


def page_text(html: str, limit: int = 240) -> str:
    """What an HTML page says, as sentences on one line (a heading and the paragraph under it
    do not run together), cut at a word boundary past `limit` characters."""
    parser = _FormParser("")
    parser.feed(html)
    blocks = (" ".join(block.split()) for block in "".join(parser.text).split(_BREAK))
    return excerpt(" ".join(_sentence(block) for block in blocks if block), limit)


async def form_sign_in(
    url: str, redirect_uri: str, username: str, password: str, *, timeout: float = 10.0
) -> SignInResult:
    """Sign in and consent on the server's pages; return the authorization response."""
    jar = CookieJar(_LoopbackCookiePolicy())
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, cookies=jar) as http:
        response = await _get(http, url)
        signed_in = False
        for _ in range(_MAX_STEPS):
            location = response.headers.get("location")
            if response.is_redirect and location:
                target = urljoin(str(response.url), location)
                if lands_on(target, redirect_uri):
                    return SignInResult(params_of(target), target)  # read, never followed
                if (urlsplit(target).hostname or "") in _NEVER_FOLLOW:
                    raise SignInError(
                        f"redirected to {target}, not to the redirect URI {redirect_uri}",
                        "redirect to exactly the redirect_uri of the request",
                    )
                response = await _get(http, target)
                continue
            if response.status_code >= 400:
                raise SignInError(
                    f"{response.request.method} {response.url.path} → {response.status_code}: "
                    f"{page_text(response.text)!r}",
                    fix_for_page(response.text),
                )
            parser = _FormParser(str(response.url))
            parser.feed(response.text)
            response, signed_in = await _submit(http, parser.forms, username, password, signed_in)
        raise SignInError(f"no redirect to {redirect_uri} after {_MAX_STEPS} pages", "use --token or --interactive")


_REACH = "check that the authorization server is reachable"


async def _get(http: httpx.AsyncClient, url: str) -> httpx.Response:
    try:
        with translated(f"GET {url}"):
            return await http.get(url)
    except Unreachable as exc:
        raise SignInError(f"{exc.what}: {exc.kind}", _REACH) from None


async def _submit(
    http: httpx.AsyncClient, forms: list[_Form], username: str, password: str, signed_in: bool
) -> tuple[httpx.Response, bool]:
    login = next((f for f in forms if "password" in f.types.values()), None)
    consent = next((f for f in forms if any(_allows(n, v) for n, v in f.buttons)), None)
    if login is not None:
        if signed_in:
            raise SignInError("the sign-in form came back after signing in", "check the user name and password")
        data = dict(login.fields)
        pw_field = next(n for n, t in login.types.items() if t == "password")
        user_field = next((n for n in login.fields if n.lower() in _USER_NAMES), None) or next(
            (n for n, t in login.types.items() if t in ("text", "email")), None
        )
        if user_field is None:
            raise SignInError("the sign-in form has no user name field", "use --token or --interactive")
        data[user_field], data[pw_field] = username, password
        return await _send(http, login, data), True
    if consent is not None:
        name, value = next((n, v) for n, v in consent.buttons if _allows(n, v))
        return await _send(http, consent, {**consent.fields, name: value}), signed_in
    raise SignInError(
        "the authorization page has no sign-in or consent form the doctor understands",
        "use --token TOKEN, or --interactive with a loopback client",
    )


def _allows(name: str, value: str) -> bool:
    """A consent form's allow button: by its value (`decision=allow`), or by its name when it has no
    value (Keycloak's `<button name="accept">Yes</button>`)."""
    return value.lower() in _ALLOW or (not value and name.lower() in _ALLOW)


async def _send(http: httpx.AsyncClient, form: _Form, data: dict[str, str]) -> httpx.Response:
    try:
        with translated(f"{form.method.upper()} {form.action}"):
            if form.method == "get":
                return await http.get(form.action, params=data)
            return await http.post(form.action, data=data)
    except Unreachable as exc:
        raise SignInError(f"{exc.what}: {exc.kind}", _REACH) from None


# the server could not use a CIMD client's document (the authorization step names the host)
CIMD_FETCH_FIX = "the server could not use the client's metadata document: check it can fetch it (CIMD)"


def fix_for_page(html: str) -> str:
    text = html.lower()
    if "metadata document" in text or "client_id" in text and "fetch" in text:
        return CIMD_FETCH_FIX
    if "redirect" in text:
        return "register (or accept) this client's redirect URI"
    if "too many" in text:
        return "sign-in is rate limited: wait a minute"
    return "see the page above and the server's log"


async def loopback_sign_in(
    url: str, redirect_uri: str, *, timeout: float = 300.0, out: TextIO = sys.stderr
) -> SignInResult:
    """Print `url`, then wait for the browser's redirect to the loopback `redirect_uri`."""
    want = urlsplit(redirect_uri)
    host = "127.0.0.1" if want.hostname == "localhost" else (want.hostname or "127.0.0.1")
    arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").split()
            target = unquote(line[1]) if len(line) > 1 else "/"
            hit = urlsplit(target).path == want.path
            body = b"Signed in: you can close this tab." if hit else b"Not found"
            writer.write(
                b"HTTP/1.1 %d OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (200 if hit else 404, len(body), body)
            )
            await writer.drain()
            if hit and not arrived.done():
                arrived.set_result(f"{want.scheme}://{want.netloc}{line[1]}")
        except (OSError, TimeoutError, IndexError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, want.port or 80)
    except OSError as exc:
        raise SignInError(
            f"cannot listen on {host}:{want.port} for {redirect_uri}: {exc.strerror}",
            "free that port (is the real client running?) or use --user/--token",
        ) from None
    print(f"\nOpen this URL in a browser and sign in (waiting up to {timeout:g}s):\n  {url}\n", file=out, flush=True)
    try:
        async with asyncio.timeout(timeout):
            location = await arrived
    except TimeoutError:
        raise SignInError(
            f"no redirect to {redirect_uri} within {timeout:g}s",
            "finish signing in in time, or use --user NAME --password-stdin / --token",
        ) from None
    finally:
        server.close()
        await server.wait_closed()
    return SignInResult(params_of(location), location)
