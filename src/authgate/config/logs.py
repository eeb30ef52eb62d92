"""Logging section: how much authgate logs, and in which shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LogSettings(BaseModel):
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text, or json: one object per line with request_id, subject, client_id, "
        "mcp_method, … (never a token or secret)",
    )
