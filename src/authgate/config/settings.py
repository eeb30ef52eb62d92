"""One validated settings object: TOML file < AUTHGATE_* env vars < CLI flags.

Each field is one setting; the CLI builds a `--flag` per field (underscores become dashes),
so flags, env vars and TOML keys map onto it one to one. The fields live in one module per
section (server, tokens, sign-in, registration, policy, gateway, logging, external IdP, proxy
mode, connection attempts), composed here into the one `Settings`. A wrong value fails at start with a
`ConfigError` listing every problem at once, each naming its setting, what was wrong and its fix:
single-field checks are the sections' validators, rules across fields `_cross_field_rules`.
"""

from __future__ import annotations

import contextvars
import re
from pathlib import Path
from typing import Any

from pydantic import ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from authgate.config import (
    connections,
    enterprise,
    exchange,
    external,
    gateway,
    metrics,
    policy,
    proxy,
    registration,
    server,
    signin,
    tokens,
)
from authgate.config.attempts import AttemptSettings
from authgate.config.connections import ConnectionSettings, connection_refusals
from authgate.config.enterprise import EnterpriseSettings, enterprise_refusals
from authgate.config.exchange import TokenExchangeSettings
from authgate.config.external import ExternalSettings, external_refusals
from authgate.config.gateway import GatewaySettings, gateway_refusals, upstream_provider_refusals
from authgate.config.logs import LogSettings
from authgate.config.metrics import MetricsSettings, metrics_refusals
from authgate.config.policy import PolicySettings, policy_refusals
from authgate.config.problems import UNKNOWN_FIX, Refusals, constraint_fix, refusals_of
from authgate.config.proxy import ProxySettings, proxy_refusals
from authgate.config.registration import RegistrationSettings
from authgate.config.server import ServerSettings, server_refusals
from authgate.config.signin import SignInSettings
from authgate.config.tokens import TokenSettings
from authgate.config.tracing import FIXES as TRACING_FIXES
from authgate.config.tracing import TracingSettings
from authgate.errors import ConfigError, SettingProblem

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("authgate_toml", default=None)


# Bases are listed last section first: pydantic collects fields from the last base on, so the
# fields (and `authgate serve --help`) read server, tokens, sign-in, …, proxy mode.
class Settings(
    TokenExchangeSettings,
    ConnectionSettings,
    MetricsSettings,
    TracingSettings,
    AttemptSettings,
    EnterpriseSettings,
    ProxySettings,
    ExternalSettings,
    LogSettings,
    GatewaySettings,
    PolicySettings,
    RegistrationSettings,
    SignInSettings,
    TokenSettings,
    ServerSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_prefix="AUTHGATE_", extra="forbid", validate_default=True, frozen=True)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Settings:
        # Runs once every field is valid; raises every problem found, not only the first.
        refusals = [
            *server_refusals(self),
            *policy_refusals(self, self.scopes),
            *gateway_refusals(self, self.public_url, self.auth_mode),
            *upstream_provider_refusals(self, self.connection_providers, self.auth_mode),
            *external_refusals(self),
            *proxy_refusals(self, self.auth_mode),
            *enterprise_refusals(self, self.auth_mode),
            *metrics_refusals(self),
            *connection_refusals(self, self.auth_mode),
        ]
        if refusals:
            raise Refusals(refusals)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        # pydantic runs the cross-field rules only when every field is valid: when some are not,
        # validate again without them (their defaults stand in) to report the rules' verdicts too,
        # except those that read a wrong setting.
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict) or not all(error["loc"] for error in exc.errors()):
                raise  # the rules ran: every field was valid
            wrong = refusals_of(exc)
            names = {r.setting for r in wrong}
        try:
            handler({k: v for k, v in data.items() if k not in names})
        except ValidationError as again:
            wrong += [r for r in refusals_of(again) if not names & {r.setting, *r.depends}]
        raise Refusals(wrong) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


FIXES: dict[str, str] = {
    **server.FIXES,
    **tokens.FIXES,
    **signin.FIXES,
    **registration.FIXES,
    **policy.FIXES,
    **gateway.FIXES,
    **external.FIXES,
    **proxy.FIXES,
    **enterprise.FIXES,
    **metrics.FIXES,
    **connections.FIXES,
    **exchange.FIXES,
    **TRACING_FIXES,
}


def fix_for(setting: str) -> str:
    """The fix to tell the user when `setting` is refused: its own, or what its type and bounds imply."""
    field = Settings.model_fields.get(setting)
    if field is None:
        return UNKNOWN_FIX
    fix = FIXES.get(setting) or constraint_fix(field)
    if fix is None:  # tests/config/test_settings_sections.py keeps every setting covered
        raise KeyError(f"no fix for setting {setting!r}")
    return fix


def config_error(exc: ValidationError) -> ConfigError:
    """Every refused setting, each once (its first problem) and with its fix, in one error."""
    problems: dict[str, SettingProblem] = {}
    for r in refusals_of(exc):
        problems.setdefault(r.setting, SettingProblem(r.setting, r.problem, r.fix or fix_for(r.setting)))
    return ConfigError.of(list(problems.values()))


def _source_error(exc: SettingsError) -> ConfigError:
    # pydantic-settings refuses an env var that is not JSON before validation, naming the field
    named = re.search(r'field "(\w+)"', str(exc))
    if named and named.group(1) in Settings.model_fields:
        setting = named.group(1)
        return ConfigError(
            setting,
            f"AUTHGATE_{setting.upper()} is not valid JSON (lists and maps are JSON in the environment)",
            fix_for(setting),
        )
    return ConfigError("config", str(exc), "fix the TOML syntax")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the TOML file, the environment and explicit overrides (CLI)."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError("config", f"file {config_file} does not exist", "pass an existing TOML file to --config")
    token = _toml_path.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise config_error(exc) from None
    except SettingsError as exc:
        raise _source_error(exc) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError("config", str(exc), "fix the TOML syntax") from None
    finally:
        _toml_path.reset(token)
