"""exp / nbf / iat are NumericDates: any JSON number, checked the same whether integer or not,
for authgate's own tokens and an external IdP's (issue 11: a float `nbf` was ignored)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.errors import InvalidToken
from authgate.oauth.access_tokens import check_times
from support import requirements as req

NOW = 1_800_000_000.0


def check(**claims: Any) -> int:
    return check_times(claims, now=NOW, leeway=30)


@pytest.mark.requirement(req.RFC7519_4_1_5_NBF)
@pytest.mark.parametrize("nbf", [NOW + 3600.5, NOW + 31.0, int(NOW) + 3600])
def test_an_nbf_in_the_future_is_refused_integer_or_not(nbf: float) -> None:
    with pytest.raises(InvalidToken, match="not valid yet"):
        check(exp=NOW + 7200, nbf=nbf)


def test_float_dates_in_range_are_accepted_and_exp_is_returned_whole() -> None:
    assert check(exp=NOW + 300.75, nbf=NOW - 0.5, iat=NOW - 0.5) == int(NOW) + 300
    assert check(exp=NOW - 29.5) == int(NOW) - 30  # within the leeway


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": NOW - 30.5},  # expired, float
        {"exp": NOW + 300, "iat": NOW + 3600.5},  # issued in the future
        {"nbf": NOW},  # no exp at all
    ],
    ids=["expired", "iat-future", "no-exp"],
)
def test_out_of_range_dates_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        check(**claims)


@pytest.mark.requirement(req.RFC7519_2_NUMERIC_DATE)
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ['"1800000000"', "true", "NaN", "Infinity", "null", "[1]"])
def test_a_date_that_is_not_a_finite_number_is_refused(name: str, value: str) -> None:
    claims = {"exp": NOW + 300, name: json.loads(value)}  # json.loads takes NaN and Infinity
    with pytest.raises(InvalidToken, match="NumericDate"):
        check_times(claims, now=NOW, leeway=30)


def test_a_huge_integer_date_is_a_number_not_a_crash() -> None:
    assert check(exp=10**400) == 10**400
    with pytest.raises(InvalidToken, match="not valid yet"):
        check(exp=10**400, nbf=10**300)
