"""One CLI flag per setting, generated from the Settings model so the two cannot drift."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from authgate.config.settings import Settings


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also AUTHGATE_<NAME> or a key in --config)")
    group.add_argument("--config", type=Path, help="TOML file with settings")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = field.description or ""
        if _is_bool(field.annotation):
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif _is_list(field.annotation):
            group.add_argument(
                flag, dest=name, action="append", default=None, metavar="VALUE", help=help_text + " (repeatable)"
            )
        else:
            group.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
