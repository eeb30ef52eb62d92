"""A person signing in on Keycloak's own login page: headless Debian Chromium driven by Playwright.

`KeycloakBrowser` is the `redirect_handler` / `callback_handler` pair of the `mcp` SDK's
`OAuthClientProvider`: the SDK hands it the authorization URL; it opens it in Chromium, fills
Keycloak's login form (`#username`, `#password`, `#kc-login`), accepts the consent page when Keycloak
shows one (anonymous DCR clients must ask for consent: the realm's Consent Required policy) or
authgate's own consent page (proxy mode, before it sends the person to Keycloak), and catches the
redirect to the client's redirect URI (seen as a request: nothing listens there) for
the code, state and `iss` — or, with `deliver`, lets Chromium load it (the Inspector CLI listens
there). Playwright's sync API runs in a worker thread; every wait is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from mcp.shared.auth import AuthorizationCodeResult

from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.needs import unavailable

STEP_TIMEOUT_MS = 20_000
MAX_PAGES = 12


def require_chromium() -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium; or run `bash scripts/test.sh`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the python package playwright is not installed (pip install -e '.[test]')")


@dataclass
class KeycloakBrowser:
    username: str
    password: str
    redirect_uri: str
    screenshot: Path | None = None  # the login page, for test-artifacts
    urls: list[str] = field(default_factory=list)  # authorization URLs the SDK opened
    pages: list[str] = field(default_factory=list)  # titles of the pages seen (login, consent)
    params: dict[str, str] = field(default_factory=dict)
    deliver: bool = False  # let Chromium load the redirect URI (a client listening there: the Inspector CLI)

    async def redirect_handler(self, url: str) -> None:
        self.urls.append(url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        self.params = await anyio.to_thread.run_sync(self.sign_in, self.urls[-1])
        if "code" not in self.params:
            raise AssertionError(f"Keycloak answered the client with {self.params}")
        return AuthorizationCodeResult(
            code=self.params["code"], state=self.params.get("state"), iss=self.params.get("iss")
        )

    def sign_in(self, url: str) -> dict[str, str]:
        from playwright.sync_api import sync_playwright

        caught: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(STEP_TIMEOUT_MS)

                # The redirect to the client is seen as a request (nothing listens there: the
                # navigation then fails, which is fine). A route cannot catch it: Playwright does not
                # route the later requests of a redirect chain.
                page.on("request", lambda r: caught.append(r.url) if r.url.startswith(self.redirect_uri) else None)
                page.goto(url)
                for _ in range(MAX_PAGES):
                    if caught:
                        break
                    self._act(page, caught)
                if not caught:
                    text = page.inner_text("body")[:300]
                    raise AssertionError(f"no redirect to {self.redirect_uri}; the page says: {text}")
                if self.deliver:  # until the client's loopback server has answered the redirect
                    page.wait_for_url(lambda u: u.startswith(self.redirect_uri), wait_until="commit")
            finally:
                browser.close()
        return {k: v[0] for k, v in parse_qs(urlsplit(caught[0]).query).items()}

    def _act(self, page: Any, caught: list[str]) -> None:
        """One page: Keycloak's login form, Keycloak's consent, or authgate's consent (proxy mode)."""
        page.wait_for_load_state()
        self.pages.append(f"{page.title()} <{urlsplit(page.url).path}>")
        if page.locator("#username").count():
            if self.screenshot is not None:
                page.screenshot(path=str(self.screenshot))
            page.fill("#username", self.username)
            page.fill("#password", self.password)
            self._submit(page, "#kc-login", caught)
        elif page.locator("[name=accept]").count():  # Keycloak's consent page: grant access
            self._submit(page, "[name=accept]", caught)
        elif page.locator("button[name=decision][value=allow]").count():  # authgate's consent page
            self._submit(page, "button[name=decision][value=allow]", caught)
        else:
            page.wait_for_timeout(250)  # a redirect under way

    @staticmethod
    def _submit(page: Any, selector: str, caught: list[str]) -> None:
        before = page.url
        page.click(selector, no_wait_after=True)
        for _ in range(int(STEP_TIMEOUT_MS / 250)):
            if caught or page.url != before:
                return
            page.wait_for_timeout(250)
