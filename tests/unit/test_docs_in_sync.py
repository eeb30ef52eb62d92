"""Documentation that must not drift from the code."""

from __future__ import annotations

import types
from pathlib import Path

import authgate
from authgate.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_configuration_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        name for name in Settings.model_fields if f"`{name}`" not in text or f"AUTHGATE_{name.upper()}" not in text
    ]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_public_api_all_is_exact() -> None:
    public = {
        n for n in dir(authgate) if not n.startswith("_") and not isinstance(getattr(authgate, n), types.ModuleType)
    }
    assert set(authgate.__all__) - {"__version__"} == public
