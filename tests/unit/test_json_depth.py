"""JSON bodies nest at most json_depth.MAX_DEPTH levels; deeper is TooDeep, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from authgate import json_depth
from authgate.json_depth import MAX_DEPTH, TooDeep


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def test_the_limit_itself_is_accepted_and_one_more_level_is_not() -> None:
    assert json_depth.loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(TooDeep):
        json_depth.loads(nested(MAX_DEPTH + 1))
    objects = "".join('{"a":' for _ in range(MAX_DEPTH + 1)) + "1" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(TooDeep):
        json_depth.loads(objects.encode())


def test_32000_levels_are_too_deep_not_a_recursion_error() -> None:
    with pytest.raises(TooDeep):
        json_depth.loads(nested(32_000))


def test_brackets_inside_strings_and_wide_bodies_are_not_depth() -> None:
    wide = json.dumps({"s": "[" * 10_000, "list": [[1]] * 10_000}).encode()
    assert json_depth.loads(wide)["s"] == "[" * 10_000


def test_too_deep_is_not_a_value_error() -> None:
    # Callers read a ValueError as "not JSON: let the app answer"; a body too deep to judge
    # must never be passed on that way.
    assert not issubclass(TooDeep, ValueError)
    with pytest.raises(ValueError):
        json_depth.loads(b"{not json")
