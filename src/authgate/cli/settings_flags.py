"""One CLI flag per setting, generated from the Settings model so the two cannot drift.

Every command that reads settings accepts every flag; its `--help` lists only the ones that
matter to it (`shown`), `serve --help` lists them all with their defaults. Values as typed on
a command line: a list setting takes the flag repeated (`--scopes mcp --scopes kb.read`) or a
JSON list; a command (`upstream_command`) one string split like a shell does
(`--upstream-command "npx -y server"`) or a JSON list; a map setting a JSON object.
"""

from __future__ import annotations

import argparse
import json
import shlex
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from authgate.config.settings import Settings

# Settings whose value is a command line: one string, split into words like a shell would.
COMMAND_SETTINGS = frozenset({"upstream_command"})
# What commands that open the store show in their --help (the rest stay accepted, unlisted).
STORE_SETTINGS = ("data_dir", "database_url")
ALL_SETTINGS = None  # `serve`: every setting listed, with its default


def _types(annotation: Any) -> tuple[Any, ...]:
    """`list[str] | None` -> (list[str],): the types a setting takes besides None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) is list for a in _types(annotation))


def _is_map(annotation: Any) -> bool:
    return any(typing.get_origin(a) is dict for a in _types(annotation))


def _json(text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, kind):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON {kind.__name__}")
    return value


def command_words(text: str) -> list[str]:
    """`"npx -y server"` (split like a shell) or `'["npx","-y","server"]'`."""
    if text.lstrip().startswith("["):
        return [str(w) for w in _json(text, list)]
    try:
        return shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _list_items(text: str) -> list[Any]:
    return _json(text, list) if text.lstrip().startswith("[") else [text]


def _map_value(text: str) -> Any:
    # a string that is not a JSON object goes on to the setting's own parser (upstream_headers'
    # 'Name: value'), which refuses it naming the setting when it has none
    return _json(text, dict) if text.lstrip().startswith("{") else text


class _Extend(argparse.Action):
    """A repeated flag adds its value; a JSON list adds each item."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        setattr(ns, self.dest, [*(getattr(ns, self.dest, None) or []), *values])


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None or default == "" or default == [] or default == {}:
        return ""
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, (list, dict)):
        shown = json.dumps(default)
    else:
        shown = str(default)
    return f" (default: {shown})"


def add_setting_flags(parser: argparse.ArgumentParser, *, shown: Collection[str] | None = STORE_SETTINGS) -> None:
    """A flag per setting. `shown`: the settings this command's --help lists (ALL_SETTINGS:
    every one, with its default, as `serve` does); the others are accepted but not listed."""
    about = "each also AUTHGATE_<NAME> or a key in --config"
    if shown is not None:
        about += "; every other setting of `authgate serve --help` is accepted too"
    group = parser.add_argument_group("settings", about)
    group.add_argument("--config", type=Path, metavar="FILE", help="TOML file with settings")
    for name, field in Settings.model_fields.items():
        listed = shown is None or name in shown
        text = (field.description or "").replace("%", "%%")
        default = _default_text(field) if shown is None else ""
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": text if listed else argparse.SUPPRESS}
        flag = "--" + name.replace("_", "-")
        if _is_bool(field.annotation):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **_help(kwargs, default))
        elif name in COMMAND_SETTINGS:
            group.add_argument(flag, type=command_words, metavar='"CMD ARGS"', **_help(kwargs, default))
        elif _is_list(field.annotation):
            kwargs = _help(kwargs, " (repeatable, or a JSON list)" + default)
            group.add_argument(flag, action=_Extend, type=_list_items, metavar="VALUE", **kwargs)
        elif _is_map(field.annotation):
            group.add_argument(flag, type=_map_value, metavar="JSON", **_help(kwargs, default))
        elif choices := _choices(field.annotation):
            group.add_argument(flag, choices=choices, **_help(kwargs, default))
        else:
            group.add_argument(flag, metavar=name.upper(), **_help(kwargs, default))


def _help(kwargs: dict[str, Any], suffix: str) -> dict[str, Any]:
    if kwargs["help"] is argparse.SUPPRESS:
        return kwargs
    return {**kwargs, "help": kwargs["help"] + suffix}


def _choices(annotation: Any) -> list[str]:
    """A `Literal[...]` setting's values, for argparse to check and `--help` to list."""
    return [str(v) for a in _types(annotation) if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}


def flag_of(setting: str) -> str:
    """How to give `setting` on the command line and in the environment, for error messages."""
    return f"--{setting.replace('_', '-')} / AUTHGATE_{setting.upper()}"
