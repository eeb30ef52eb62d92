"""authgate: OAuth 2.1 in front of MCP servers.

The public API is small: `protect()` wraps an ASGI MCP app, `current_identity()` tells a tool
who is calling, `upstream_token()` gives it the caller's upstream IdP token (proxy mode), `connection_token()`
the caller's token at a third-party provider (or asks the client to connect),
`Settings`/`load_settings()` hold the configuration, and every error authgate raises derives
from `AuthgateError`.

The names are resolved on first use (PEP 562), so `import authgate.oauth.pkce` or
`authgate --version` does not load the server, the store and their frameworks.
"""

import importlib as _importlib
import typing as _typing

from authgate._version import __version__

if _typing.TYPE_CHECKING:
    from authgate.config.settings import Settings, load_settings
    from authgate.errors import (
        AuthgateError,
        ConfigError,
        ConnectionRequired,
        NoUpstreamToken,
        OAuthError,
        UpstreamGrantEnded,
        UpstreamTokenError,
        UpstreamTokenUnavailable,
    )
    from authgate.guard.identity import Identity, current_identity
    from authgate.library import connection_token, protect, upstream_token

__all__ = [
    "AuthgateError",
    "ConfigError",
    "ConnectionRequired",
    "Identity",
    "NoUpstreamToken",
    "OAuthError",
    "Settings",
    "UpstreamGrantEnded",
    "UpstreamTokenError",
    "UpstreamTokenUnavailable",
    "__version__",
    "connection_token",
    "current_identity",
    "load_settings",
    "protect",
    "upstream_token",
]

# public name -> the module that defines it
_LAZY = {
    "AuthgateError": "authgate.errors",
    "ConfigError": "authgate.errors",
    "ConnectionRequired": "authgate.errors",
    "OAuthError": "authgate.errors",
    "UpstreamTokenError": "authgate.errors",
    "NoUpstreamToken": "authgate.errors",
    "UpstreamGrantEnded": "authgate.errors",
    "UpstreamTokenUnavailable": "authgate.errors",
    "Settings": "authgate.config.settings",
    "load_settings": "authgate.config.settings",
    "Identity": "authgate.guard.identity",
    "current_identity": "authgate.guard.identity",
    "protect": "authgate.library",
    "upstream_token": "authgate.library",
    "connection_token": "authgate.library",
}


def _lazy_exports(
    package: str, table: dict[str, str], namespace: dict[str, object]
) -> tuple[_typing.Callable[[str], object], _typing.Callable[[], list[str]]]:
    """A package's PEP 562 `__getattr__` and `__dir__`: each public name in `table` (name ->
    the module that defines it) is imported the first time it is read, then kept in the
    package's `namespace` so later reads skip the hook. Here so that every package can use it
    without loading another module (`authgate` is always imported first)."""

    def getattr_(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        # what is defined plus what can be: test_public_api_all_is_exact compares it with __all__
        return sorted(set(namespace) | set(table))

    return getattr_, dir_


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())
