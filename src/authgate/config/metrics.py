"""Metrics section: Prometheus metrics (server/metrics.py), off unless a listener is named.

Two ways to serve them, never public by accident:

* `metrics_listen`, a listener of its own (e.g. `127.0.0.1:9464`): loopback needs nothing
  more; any other address needs `metrics_token`, which the listener then requires.
* `metrics_on_main`, `{base}/metrics` on the main listener, which the world may reach: only
  with `metrics_token` (not "loopback only": behind a reverse proxy on the same host every
  request arrives from loopback).
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, SecretStr, field_validator

from authgate.config.problems import Refusal

FIXES: dict[str, str] = {
    "metrics_listen": "give HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (an address, not a name); "
    "leave it unset for no metrics listener",
    "metrics_token": "set a random secret of 32-512 characters (e.g. `openssl rand -hex 32`) and give it "
    "to the scraper as its bearer token",
}


class MetricsSettings(BaseModel):
    # -- metrics: Prometheus text format (server/metrics.py) -------------------------------
    metrics_listen: str | None = Field(
        None,
        description="HOST:PORT of a listener of its own serving Prometheus metrics on /metrics, e.g. "
        "127.0.0.1:9464 (unset: none); an address other than loopback needs metrics_token",
    )
    metrics_on_main: bool = Field(
        False,
        description="also serve /metrics on the main listener (under the base path); needs metrics_token, "
        "which every scrape must then send as its bearer token",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="bearer token a scraper sends to /metrics (Authorization: Bearer …); required by "
        "metrics_on_main and by a metrics_listen that is not loopback, and checked wherever it is set",
    )

    @field_validator("metrics_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            listen_address(v)
        return v

    @field_validator("metrics_token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not 32 <= len(v.get_secret_value()) <= 512:
            raise ValueError("the token must be 32 to 512 characters long")
        if v is not None and any(c.isspace() for c in v.get_secret_value()):
            raise ValueError("the token must not contain spaces or line breaks")
        return v

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_listen is not None or self.metrics_on_main


def listen_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT`) as (host, port); ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT with a port between 1 and 65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def metrics_refusals(s: MetricsSettings) -> list[Refusal]:
    """Never public by accident: a reachable /metrics needs the token."""
    found = []
    if s.metrics_on_main and s.metrics_token is None:
        found.append(
            Refusal(
                "metrics_on_main",
                "serving /metrics on the main listener needs metrics_token",
                "set metrics_token (a random secret the scraper sends as its bearer token), or use "
                "metrics_listen = 127.0.0.1:9464 instead",
                depends=("metrics_token",),
            )
        )
    if (
        s.metrics_listen is not None
        and s.metrics_token is None
        and not is_loopback(listen_address(s.metrics_listen)[0])
    ):
        found.append(
            Refusal(
                "metrics_listen",
                f"{s.metrics_listen} is not a loopback address, and no metrics_token is set",
                "set metrics_token (the scraper then sends it as its bearer token), or listen on 127.0.0.1",
                depends=("metrics_token",),
            )
        )
    return found
