"""Two `authgate serve` replicas on one PostgreSQL database behind one public URL (as behind a
load balancer: one issuer, audience and key set), for the tests that race requests across them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from support.authgate_server import AuthgateServer


@contextmanager
def two_replicas(
    database: sa.URL, workdir: Path, *, add_user: bool = False, **env: str
) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    """Replicas A and B sharing `database` and a secret key, with `env` on both; B's public URL is
    A's. `add_user`: the test user is added (once: the database is shared) before A starts."""
    shared = {
        "AUTHGATE_DATABASE_URL": database.render_as_string(hide_password=False),
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(32),
        **env,
    }
    first = AuthgateServer(workdir / "a", extra_env=shared)
    if add_user:
        first.add_user()
    first.start()
    second = AuthgateServer(workdir / "b", extra_env={"AUTHGATE_PUBLIC_URL": first.url, **shared})
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
