"""The resource guard: RFC 9728 metadata, bearer checks and challenges in front of /mcp."""

from authgate.guard.identity import Identity, current_identity

__all__ = ["Identity", "current_identity"]
