"""token_exchange_issuers: issuer URLs only (https, http on loopback), bounded, named when refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError


def test_listed_issuers_are_kept_as_written(tmp_path: Path) -> None:
    issuers = ["https://as.partner.example", "http://127.0.0.1:9000/realm"]
    settings = load_settings(None, data_dir=tmp_path, token_exchange_issuers=issuers)
    assert settings.token_exchange_issuers == issuers and settings.token_exchange_subject_ttl == 60


@pytest.mark.parametrize(
    "issuers",
    [["http://as.partner.example"], ["https://user:pw@as.example"], ["https://as.example?x=1"], ["x"] * 21],
)
def test_a_bad_issuer_list_is_refused_naming_the_setting(tmp_path: Path, issuers: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, data_dir=tmp_path, token_exchange_issuers=issuers)
    assert "token_exchange_issuers" in str(refused.value) and "pw" not in str(refused.value)
