"""Tracing section: OpenTelemetry spans for the MCP endpoint (the `authgate[otel]` extra).

Off by default. The exporter's own settings are OpenTelemetry's standard environment variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, …), read by the SDK
itself; authgate adds only whether to trace and where the spans go.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, Field, field_validator

FIXES: dict[str, str] = {
    "otel_enabled": "install the otel extra into authgate's environment (from the clone: "
    "pip install -e '.[otel]'; from a built wheel: pip install 'dist/authgate-<version>-py3-none-any.whl[otel]'), "
    "or set otel_enabled = false",
}


class TracingSettings(BaseModel):
    otel_enabled: bool = Field(
        False,
        description="OpenTelemetry traces of each /mcp request (guard, policy and upstream spans), the trace "
        "context sent on to the upstream (traceparent header; params._meta.traceparent over stdio); needs "
        "the authgate[otel] extra",
    )
    otel_exporter: Literal["otlp", "console", "global"] = Field(
        "otlp",
        description="where spans go: otlp (OTLP over HTTP, configured by the OTEL_EXPORTER_OTLP_* "
        "variables; default http://localhost:4318), console (printed on stdout, to try it), or global "
        "(the tracer provider this process already installed: library mode)",
    )

    @field_validator("otel_enabled")
    @classmethod
    def _extra_installed(cls, enabled: bool) -> bool:
        # a start-up error naming the fix, not an ImportError at the first request
        if enabled and not _sdk_installed():
            raise ValueError("is true but the OpenTelemetry SDK (the authgate[otel] extra) is not installed")
        return enabled


def _sdk_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    except (ImportError, ValueError):  # not even the API (a parent package) is there, or its import blocked
        return False
