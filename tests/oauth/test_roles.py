"""Which scopes a person may grant (oauth/roles.py): the base scopes, plus their roles'."""

from __future__ import annotations

from pathlib import Path

from authgate.config.settings import load_settings
from authgate.oauth import roles
from authgate.oauth.config import CoreConfig
from authgate.store.models import User


def _config(tmp_path: Path, **changes: object) -> CoreConfig:
    settings = load_settings(
        None,
        data_dir=tmp_path,
        scopes=["mcp"],
        tool_scopes={"docs.create": ["docs.write"], "wipe": ["admin"]},
        user_role_scopes={"admin": ["*"], "writer": ["docs.write"]},
    )
    return CoreConfig.from_settings(settings.model_copy(update=changes))


def _user(*user_roles: str) -> User:
    return User("u1", "carol", "!", 0.0, roles=user_roles)


def test_each_role_adds_its_scopes_to_the_base_and_star_is_every_offered_scope(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert roles.may_grant(config, []) == ("mcp",)
    assert roles.may_grant(config, ["writer"]) == ("mcp", "docs.write")
    assert roles.may_grant(config, ["admin"]) == ("mcp", "docs.write", "admin")
    assert roles.may_grant(config, ["unlisted"]) == ("mcp",)  # a role the setting does not name adds nothing


def test_the_grant_is_narrowed_to_the_user_and_offline_access_stays(tmp_path: Path) -> None:
    allowed = roles.grantable_by(_config(tmp_path), _user("writer"))
    assert roles.limit(("docs.write", "admin", "offline_access"), allowed) == ("docs.write", "offline_access")
    assert roles.grants_nothing(roles.limit(("admin", "offline_access"), allowed))


def test_proxy_mode_has_no_per_user_limit(tmp_path: Path) -> None:
    config = _config(tmp_path, auth_mode="proxy")  # its upstream settings aside
    assert roles.grantable_by(config, _user()) is None
    assert roles.limit(("admin",), None) == ("admin",)
