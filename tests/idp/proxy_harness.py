"""Proxy mode's test harness: authgate as a subprocess (`python -m authgate serve`, so it can
be SIGKILLed and restarted) in auth_mode = "proxy" in front of an upstream IdP, and
`ProxyBrowser`, the person at the browser: authgate's consent page first, then the upstream's
sign-in, then authgate's callback. Every request it makes is logged in order, so a test can
prove nothing reached the upstream's authorization endpoint before consent. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from support.authgate_server import AuthgateServer
from support.idp_peers import IdpUserAgent

SECRET_KEY = "proxy-test-secret-" + "s" * 32


def proxy_gate(workdir: Path, **settings: Any) -> AuthgateServer:
    """Not started: its port is known first (the upstream's static client redirects to it)."""
    env = {f"AUTHGATE_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}
    return AuthgateServer(workdir, extra_env={"AUTHGATE_AUTH_MODE": "proxy", "AUTHGATE_SECRET_KEY": SECRET_KEY, **env})


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1).replace("&#34;", '"').replace("&amp;", "&")


class ProxyBrowser:
    """Consents at authgate (or denies), signs in at the upstream as `account`, returns the
    parameters authgate finally sends to the MCP client's redirect URI."""

    def __init__(self, account: str, *, decision: str = "allow") -> None:
        self.log: list[tuple[str, str, str, int]] = []  # (host, method, path, status), in order
        hooks = {"response": [self._record]}
        self.gate = httpx.Client(timeout=10.0, follow_redirects=False, event_hooks=hooks)
        self.idp = IdpUserAgent(account)
        self.idp.http.event_hooks = hooks
        self.decision = decision
        self.consent_page = ""
        self.upstream_url = ""

    def _record(self, r: httpx.Response) -> None:
        self.log.append((r.request.url.netloc.decode(), r.request.method, r.request.url.path, r.status_code))

    def close(self) -> None:
        self.gate.close()
        self.idp.close()

    def authorize(self, url: str) -> dict[str, str]:
        page = self.gate.get(url)
        assert page.status_code == 200, f"/authorize answered {page.status_code}: {page.text[:300]}"
        self.consent_page = page.text
        form = {
            "csrf_token": _hidden(page.text, "csrf_token"),
            "request": _hidden(page.text, "request"),
            "decision": self.decision,
        }
        r = self.gate.post(urljoin(url, "/consent"), data=form)
        assert r.status_code == 303, r.text[:300]
        location = r.headers["location"]
        if self.decision != "allow":  # straight back to the MCP client
            return _params(location)
        self.upstream_url = location
        callback = self.idp.authorize(location)  # stops at the redirect back to authgate
        r = self.gate.get(urljoin(url, "/upstream/callback"), params=callback)
        assert r.status_code == 303, f"callback answered {r.status_code}: {r.text[:300]}"
        return _params(r.headers["location"])


def _params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
