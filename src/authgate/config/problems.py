"""A refused setting before it becomes a `ConfigError`, and fixes read off a field's constraints.

Section modules (`config/server.py`, …) report what is wrong as `Refusal`s; the settings
model raises them all together (`Refusals`) and `load_settings` turns them into one
`ConfigError` listing every problem, each with its setting's fix.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, Literal

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo

UNKNOWN_FIX = "remove it or check its spelling (see `authgate serve --help` for every setting)"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What is wrong with one setting; `fix` when this problem needs another fix than the setting's;
    `depends`: the other settings a cross-field rule read (when one of them is wrong itself, the
    rule's verdict is not reported: it was judged on that setting's default)."""

    setting: str
    problem: str
    fix: str | None = None
    depends: tuple[str, ...] = ()


class Refusals(ValueError):
    """Every cross-field problem at once. A ValueError so pydantic keeps it, whole, in the error's ctx."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("; ".join(f"{r.setting}: {r.problem}" for r in refusals))


def refusals_of(exc: ValidationError) -> list[Refusal]:
    """Every problem a validation error holds: the fields' own, and the cross-field `Refusals`."""
    found: list[Refusal] = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, Refusals):
            found += cause.refusals
            continue
        loc = error.get("loc", ())
        setting = str(loc[0]) if loc else "settings"
        if error.get("type") == "extra_forbidden":
            found.append(Refusal(setting, "is not a known setting", UNKNOWN_FIX))
        else:
            found.append(Refusal(setting, str(error.get("msg", "invalid value")).removeprefix("Value error, ")))
    return found


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not NoneType]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _bounds(field: FieldInfo) -> str:
    """ " between 1 and 65535", " of at least 300", " greater than 0 and at most 30", or ""."""
    low = high = ""
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"{m.ge}"
        elif isinstance(m, annotated_types.Gt):
            low = f"greater than {m.gt}"
        elif isinstance(m, annotated_types.Le):
            high = f"{m.le}"
    if low.startswith("greater"):
        return f" {low}" + (f" and at most {high}" if high else "")
    if low:
        return f" between {low} and {high}" if high else f" of at least {low}"
    return f" of at most {high}" if high else ""


def constraint_fix(field: FieldInfo) -> str | None:
    """The fix a field's type and bounds imply ("use a whole number between 1 and 65535"), or None."""
    annotation = _without_none(field.annotation)
    if annotation is bool:
        return "use true or false"
    if typing.get_origin(annotation) is Literal:
        return "use one of: " + ", ".join(str(a) for a in typing.get_args(annotation))
    if annotation is int:
        return "use a whole number" + _bounds(field)
    if annotation is float:
        return "use a number" + _bounds(field)
    return None
