"""`authgate.masking`: URLs as they may be printed, with passwords, lone userinfo (a token) and
query values masked; a URL that is not quite one is masked where it might be."""

from __future__ import annotations

import pytest

from authgate.masking import masked_url, masked_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:9000/mcp", "http://127.0.0.1:9000/mcp"),
        ("https://user:s3cret@mcp.example.com/mcp", "https://user:***@mcp.example.com/mcp"),
        ("https://ghp_token@github.com/x", "https://***@github.com/x"),  # a lone userinfo is often a token
        ("https://h/mcp?token=abc&region=eu", "https://h/mcp?token=***&region=***"),
        ("https://h/mcp?s3cret", "https://h/mcp?***"),
        ("https://h/mcp#frag", "https://h/mcp"),
        ("http://u:pa/ss@host/mcp", "http://u:***@host/mcp"),  # an unencoded "/" in the password
        ("http://host:8080/users/@me", "http://host:8080/users/@me"),  # a port, and an "@" in the path
        ("http://[::1]:9/mcp", "http://[::1]:9/mcp"),
        ("postgresql+asyncpg://app:pw@db:5432/authgate", "postgresql+asyncpg://app:***@db:5432/authgate"),
        ("sqlite+aiosqlite:////var/lib/authgate/authgate.db", "sqlite+aiosqlite:////var/lib/authgate/authgate.db"),
        ("user:pw@host/path", "user:***@host/path"),  # no scheme: still masked
    ],
)
def test_masked_url(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_masked_urls_masks_each_url_in_a_message() -> None:
    message = "500, message='Bad', url='https://h/mcp?key=K1' (via http://a:P2@proxy:3128/)"
    shown = masked_urls(message)
    assert "K1" not in shown and "P2" not in shown
    assert shown == "500, message='Bad', url='https://h/mcp?key=***' (via http://a:***@proxy:3128/)"
