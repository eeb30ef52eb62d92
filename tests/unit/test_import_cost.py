"""What importing a part of authgate loads (issue 12, Done when 1): the module set, in a
fresh interpreter, never a time."""

from __future__ import annotations

import json
import subprocess
import sys

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
