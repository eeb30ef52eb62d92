"""authgate: OAuth 2.1 in front of MCP servers.

The public API is small: `protect()` wraps an ASGI MCP app, `current_identity()` tells a tool
who is calling, `Settings`/`load_settings()` hold the configuration, and every error authgate
raises derives from `AuthgateError`.
"""

__version__ = "0.1.0"

from authgate.config.settings import Settings, load_settings  # noqa: E402
from authgate.errors import AuthgateError, ConfigError, OAuthError  # noqa: E402
from authgate.guard.identity import Identity, current_identity  # noqa: E402
from authgate.library import protect  # noqa: E402

__all__ = [
    "AuthgateError",
    "ConfigError",
    "Identity",
    "OAuthError",
    "Settings",
    "__version__",
    "current_identity",
    "load_settings",
    "protect",
]
