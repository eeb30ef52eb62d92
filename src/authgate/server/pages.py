"""HTML pages (Jinja2, autoescaped) with their security headers. Jinja2 is loaded with the
first page, not at start: a server whose people never open one (a gateway of machine clients)
never pays for it."""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse

from authgate.server.security import page_headers

if TYPE_CHECKING:
    from jinja2 import Environment


@functools.cache
def _env() -> Environment:
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("authgate.server", "templates"), autoescape=select_autoescape(["html"]))


SCOPE_TEXT = {
    "mcp": "Use the tools, resources and prompts of this MCP server",
    "offline_access": "Stay connected when you are away (refresh tokens)",
}


def describe_scopes(scopes: tuple[str, ...], texts: dict[str, str] | None = None) -> list[dict[str, str]]:
    known = {**SCOPE_TEXT, **(texts or {})}
    return [{"name": s, "text": known.get(s, f"Access granted by the “{s}” permission")} for s in scopes]


def render(template: str, *, status: int = 200, form_targets: list[str] | None = None, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _env().get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status, headers=page_headers(nonce, form_targets or []))


def error_page(title: str, message: str, hint: str = "", status: int = 400) -> HTMLResponse:
    return render("error.html", status=status, title=title, message=message, hint=hint)
