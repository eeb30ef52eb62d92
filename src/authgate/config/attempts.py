"""Connection timeline section: how many OAuth flow attempts the store keeps, for how long, and
how many failures a replica records a minute (authgate.oauth.attempts, `authgate attempts`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AttemptSettings(BaseModel):
    attempts_max_rows: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="connection attempts kept (`authgate attempts`): a new attempt past it deletes the oldest, "
        "so a flood of failed connections cannot grow the table",
    )
    attempts_retention_hours: int = Field(
        168,
        ge=1,
        le=8760,
        description="hours a connection attempt is kept after its last step; housekeeping deletes older ones",
    )
    attempts_failures_per_minute: int = Field(
        600,
        ge=1,
        le=100_000,
        description="failed steps (an unknown client, a refused token request, …) each replica records a "
        "minute; past it they are only counted in the log, so bad requests cannot turn into database writes",
    )
