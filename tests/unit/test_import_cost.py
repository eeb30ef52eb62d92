"""What importing a part of authgate loads (issue 12, Done when 1), and what a started
`authgate serve` has loaded (issue 18, lazy start-up): the module set, in a fresh interpreter
or a real server's own import log, never a time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.ports import free_port

FRAMEWORKS = ("starlette", "sqlalchemy", "aiohttp", "uvicorn", "mcp")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_oauth_core_loads_no_web_framework_store_or_mcp() -> None:
    loaded = _modules_after(
        "import importlib, pkgutil, authgate.oauth\n"
        "for m in pkgutil.iter_modules(authgate.oauth.__path__, 'authgate.oauth.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert "authgate.oauth.grants" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in FRAMEWORKS)
    assert not heavy, f"importing the OAuth core loaded {heavy}"


def test_version_loads_only_the_cli_entry_point_and_the_version_module() -> None:
    loaded = _modules_after(
        "import sys\nsys.argv = ['authgate', '--version']\nfrom authgate.cli.main import main\nassert main() == 0"
    )
    ours = {m for m in loaded if m == "authgate" or m.startswith("authgate.")}
    assert ours == {"authgate", "authgate._version", "authgate.cli", "authgate.cli.main"}


def test_the_oauth_core_loads_neither_the_settings_model_nor_the_policy() -> None:
    # the core reads CoreConfig (oauth/config.py), built from the settings by whoever starts it
    loaded = _modules_after(
        "import importlib, pkgutil, authgate.oauth\n"
        "for m in pkgutil.iter_modules(authgate.oauth.__path__, 'authgate.oauth.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert "authgate.oauth.config" in loaded
    found = sorted({"authgate.config.settings", "authgate.policy", "pydantic_settings"} & loaded)
    assert not found, f"importing the OAuth core loaded {found}"


def _started_server_imports(tmp_path: Path, *, migrated: bool = True, **env: str) -> set[str]:
    """Every module a real `authgate serve` imported by the time /health answered (python's
    own import log, PYTHONPROFILEIMPORTTIME), on a database `users add` already migrated
    (`migrated`), else on an empty data directory."""
    server = AuthgateServer(tmp_path, extra_env={"PYTHONPROFILEIMPORTTIME": "1", **env})
    if migrated:
        server.add_user()
    server.start()
    server.stop()
    stderr = (server.logs_dir / f"serve-{server.runs}.stderr").read_text()
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", stderr, re.MULTILINE))


def _loaded(imported: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in imported if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.requirement(req.ISSUE18_GATEWAY_STARTS_WITHOUT_SDK)
@pytest.mark.requirement(req.ISSUE13_TRACES_OFF_IMPORTS_NOTHING)
@pytest.mark.requirement(req.ISSUE13_METRICS_NOT_PUBLIC)
def test_the_http_gateway_starts_without_the_mcp_sdk_the_knowledge_base_or_alembic(tmp_path: Path) -> None:
    imported = _started_server_imports(tmp_path, AUTHGATE_UPSTREAM=f"http://127.0.0.1:{free_port()}/mcp")
    assert "authgate.gateway.http.proxy" in imported  # it did start the gateway
    # alembic: the schema is current; jinja2: no page asked for yet; httpx: no CIMD client yet;
    # opentelemetry: tracing is off (otel_enabled), whether or not the otel extra is installed
    assert not _loaded(imported, "mcp", "mcp_types", "authgate.kb", "alembic", "jinja2", "httpx")
    # websockets: uvicorn runs with ws="none" (authgate serves no WebSocket)
    assert not _loaded(imported, "websockets", "wsproto")
    # an SQLite file at head runs on the sqlite3 module: no asyncio layer, ORM or aiosqlite
    assert not _loaded(imported, "sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite")
    assert not _loaded(imported, "opentelemetry", "authgate.tracing", "authgate.server.tracing")
    # prometheus_client: metrics are off (metrics_listen, metrics_on_main)
    assert not _loaded(imported, "prometheus_client", "authgate.server.metrics", "authgate.server.metrics_http")


def test_the_built_in_server_starts_without_alembic_or_jinja2(tmp_path: Path) -> None:
    imported = _started_server_imports(tmp_path)
    assert "authgate.kb.server" in imported
    assert not _loaded(imported, "alembic", "jinja2", "sqlalchemy.dialects.postgresql")
    assert not _loaded(imported, "sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite")


def test_a_first_start_migrates_in_a_child_and_the_server_never_imports_alembic(tmp_path: Path) -> None:
    # the empty database is brought to head by a child process (store/sql/upgrade_child.py),
    # whose modules leave with it; the server itself then opens the file at head
    imported = _started_server_imports(
        tmp_path, migrated=False, AUTHGATE_UPSTREAM=f"http://127.0.0.1:{free_port()}/mcp"
    )
    assert "authgate.store.sql.upgrade_child" in imported  # it did run the child
    assert not _loaded(imported, "alembic", "mako", "authgate.store.sql.migrate")
    assert not _loaded(imported, "sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite")
