"""The enterprise section (config/enterprise.py): trusted ID-JAG issuers and workload issuers,
each issuer one or the other, embedded mode only, issuer and jwks_uri URLs checked at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authgate.config.settings import load_settings
from authgate.errors import ConfigError
from support import requirements as req

IDP = "https://idp.example.com"
KEYS = {"jwks_uri": "https://idp.example.com/keys"}


def _problems(tmp_path: Path, **overrides: Any) -> dict[str, tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, data_dir=tmp_path, **overrides)
    return {p.setting: (p.problem, p.fix) for p in caught.value.problems}


def test_an_enterprise_idp_from_json_text(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, enterprise_idps=json.dumps({IDP: KEYS}))
    idp = settings.enterprise_idps[IDP]
    assert (idp.email_mapping, idp.allow_public_clients, idp.provision_users) == (False, False, True)


@pytest.mark.requirement(req.ISSUE16_JWT_BEARER_KINDS_APART)
def test_an_issuer_is_never_both_kinds(tmp_path: Path) -> None:
    workload = {IDP: {**KEYS, "subjects": {"system:serviceaccount:ci:runner": "client-1"}}}
    problems = _problems(tmp_path, enterprise_idps={IDP: KEYS}, workload_issuers=workload)
    assert "both an enterprise IdP and a workload issuer" in problems["workload_issuers"][0]


def test_bad_issuers_and_key_urls_and_other_modes_are_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, enterprise_idps={"http://idp.example.com": KEYS})
    assert "HTTPS is required" in problems["enterprise_idps"][0]
    problems = _problems(tmp_path, enterprise_idps={IDP: {"jwks_uri": "http://idp.example.com/keys"}})
    assert "jwks_uri" in problems["enterprise_idps"][0]
    problems = _problems(tmp_path, workload_issuers={IDP: {**KEYS, "subjects": {}}})
    assert "at least one subject" in problems["workload_issuers"][0]
    problems = _problems(
        tmp_path, auth_mode="external", issuer="https://other.example.com", audiences=["x"], enterprise_idps={IDP: KEYS}
    )
    assert "embedded" in problems["enterprise_idps"][0]
