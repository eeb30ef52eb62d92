"""HTML pages (Jinja2, autoescaped) with their security headers."""

from __future__ import annotations

import secrets
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from authgate.server.security import page_headers

_env = Environment(loader=PackageLoader("authgate.server", "templates"), autoescape=select_autoescape(["html"]))

SCOPE_TEXT = {
    "mcp": "Use the tools, resources and prompts of this MCP server",
    "offline_access": "Stay connected when you are away (refresh tokens)",
}


def describe_scopes(scopes: tuple[str, ...], texts: dict[str, str] | None = None) -> list[dict[str, str]]:
    known = {**SCOPE_TEXT, **(texts or {})}
    return [{"name": s, "text": known.get(s, f"Access granted by the “{s}” permission")} for s in scopes]


def render(template: str, *, status: int = 200, form_targets: list[str] | None = None, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _env.get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status, headers=page_headers(nonce, form_targets or []))


def error_page(title: str, message: str, hint: str = "", status: int = 400) -> HTMLResponse:
    return render("error.html", status=status, title=title, message=message, hint=hint)
