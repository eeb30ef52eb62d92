"""Redirect URI rules: registration-time validation and authorization-time matching."""

from __future__ import annotations

import unicodedata
from urllib.parse import SplitResult, urlsplit, urlunsplit

from authgate.config.urls import is_loopback_host
from authgate.errors import InvalidRedirectUri

# Control (Cc), format (Cf: bidi overrides, zero-width) and separator (Z*) characters: none
# belongs in a URI (RFC 3986 §2), and each can make the consent page or a log line lie.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def _unsafe_char(uri: str) -> str | None:
    return next((c for c in uri if unicodedata.category(c) in _UNSAFE_CATEGORIES), None)


def _refuse_unsafe_text(uri: str, parts: SplitResult) -> None:
    """What would let a registered URI show one destination and reach another."""
    bad = _unsafe_char(uri)
    if bad is not None:
        raise InvalidRedirectUri(
            f"redirect_uri {uri!r} contains the character U+{ord(bad):04X} "
            "(control characters, including CR, LF and NUL, and whitespace are not allowed)"
        )
    if "@" in parts.netloc:  # RFC 9700 §4.1.3 / OAuth 2.1 §1.5: "https://trusted@evil/" deceives
        raise InvalidRedirectUri(
            f"redirect_uri {uri!r} has user information before '@' in its host part; register the URI without it"
        )
    if "\\" in parts.netloc:  # browsers read "\\" as "/" in http(s) URLs: the host would differ
        raise InvalidRedirectUri(f"redirect_uri {uri!r} has a backslash in its host part")


def validate_for_registration(uri: str, application_type: str = "web") -> None:
    """RFC 7591 §2 / OAuth 2.1 §2.3.1: absolute, no fragment; HTTPS unless loopback or a
    native app's private-use scheme; no userinfo, control characters or whitespace."""
    parts = urlsplit(uri)
    _refuse_unsafe_text(uri, parts)
    if not parts.scheme:
        raise InvalidRedirectUri(f"redirect_uri {uri!r} is not an absolute URI")
    if parts.fragment or "#" in uri:
        raise InvalidRedirectUri(f"redirect_uri {uri!r} must not contain a fragment")
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not parts.hostname:
            raise InvalidRedirectUri(f"redirect_uri {uri!r} has no host")
        return
    if scheme == "http":
        if parts.hostname and is_loopback_host(parts.hostname):
            return
        raise InvalidRedirectUri(f"redirect_uri {uri!r}: http is allowed only for loopback hosts")
    if scheme in ("javascript", "data", "file", "vbscript"):
        raise InvalidRedirectUri(f"redirect_uri scheme {scheme!r} is not allowed")
    # RFC 8252 §7.1: private-use URI schemes belong to native apps
    if application_type != "native":
        raise InvalidRedirectUri(
            f'redirect_uri {uri!r}: a custom scheme needs application_type "native" (RFC 8252 §7.1)'
        )


def _is_loopback_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") in {"127.0.0.1", "::1", "localhost"}


def _without_port(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def matches(registered: list[str], presented: str) -> bool:
    """Exact string match (OAuth 2.1 §4.1.1), except that for loopback redirect URIs the
    port is ignored (RFC 8252 §7.3). The host stays as the client registered it."""
    if presented in registered:
        return True
    # urlsplit drops tab/CR/LF and `_without_port` drops userinfo: refuse them here first
    if not _is_loopback_uri(presented) or _unsafe_char(presented) or "@" in urlsplit(presented).netloc:
        return False
    bare = _without_port(presented)
    return any(_is_loopback_uri(r) and _without_port(r) == bare for r in registered)


def all_loopback(uris: list[str]) -> bool:
    return bool(uris) and all(_is_loopback_uri(u) for u in uris)


def display_host(uri: str) -> str:
    """The destination a person is told about: the host alone, never the userinfo, path or
    query a client chose; in ASCII (IDNA), so look-alike letters show as `xn--`. A native
    app's private-use scheme is its name (RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https"):
        return f"{parts.scheme}:"
    host = parts.hostname or ""
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = host.encode("ascii", "backslashreplace").decode("ascii")
    return f"[{host}]" if ":" in host else host


def form_action_source(uri: str) -> str:
    """The CSP `form-action` source that lets a form's redirect reach `uri` (Chrome applies
    form-action to the redirect after a form POST)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        if _is_loopback_uri(uri):
            # any port: the loopback client may listen anywhere (RFC 8252 §7.3)
            host = parts.hostname or ""
            return f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:*"
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


__all__ = ["all_loopback", "display_host", "form_action_source", "matches", "validate_for_registration"]
