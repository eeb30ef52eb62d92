"""Each IdP profile has its page, and each trap `authgate idp check` can name is explained there."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.idp.profiles import PROFILES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "idp"


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_has_a_page_naming_each_of_its_traps(name: str) -> None:
    page = (DOCS / f"{name}.md").read_text()
    assert f'idp_profile = "{name}"' in page
    missing = [t.code for t in PROFILES[name].traps if f"`{t.code}`" not in page]
    assert not missing, f"docs/idp/{name}.md lacks {missing}"
    assert f"({name}.md)" in (DOCS / "external.md").read_text()
