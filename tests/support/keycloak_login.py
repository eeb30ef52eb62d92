"""A person signing in on Keycloak's own login page: headless Debian Chromium driven by Playwright.

`KeycloakBrowser` is the `redirect_handler` / `callback_handler` pair of the `mcp` SDK's
`OAuthClientProvider`: the SDK hands it the authorization URL; it opens it in Chromium, fills
Keycloak's login form (`#username`, `#password`, `#kc-login`), accepts the consent page when Keycloak
shows one (anonymous DCR clients must ask for consent: the realm's Consent Required policy), and
catches the redirect to the client's redirect URI (a Playwright route: nothing listens there) for
the code, state and `iss`. Playwright's sync API runs in a worker thread; every wait is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from mcp.shared.auth import AuthorizationCodeResult

from support.needs import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STEP_TIMEOUT_MS = 20_000


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

                def catch(route: Any) -> None:
                    caught.append(route.request.url)
                    route.fulfill(status=200, content_type="text/plain", body="signed in")

                page.route(f"{self.redirect_uri}**", catch)
                page.goto(url)
                self.pages.append(page.title())
                if self.screenshot is not None:
                    page.screenshot(path=str(self.screenshot))
                page.fill("#username", self.username)
                page.fill("#password", self.password)
                page.click("#kc-login")
                page.wait_for_load_state()
                if not caught and page.locator("input[name=accept], button[name=accept]").count():
                    self.pages.append(page.title())  # Keycloak's consent page: grant access
                    page.click("[name=accept]")
                page.wait_for_function("() => true")  # let the last navigation settle
                for _ in range(40):
                    if caught:
                        break
                    page.wait_for_timeout(250)
                if not caught:
                    text = page.inner_text("body")[:300]
                    raise AssertionError(f"no redirect to {self.redirect_uri}; the page says: {text}")
            finally:
                browser.close()
        return {k: v[0] for k, v in parse_qs(urlsplit(caught[0]).query).items()}
