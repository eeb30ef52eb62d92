"""The one `WWW-Authenticate` parser (RFC 9110 §11): several challenges, auth-params, quoted
strings with escapes, token68, the grammar's breaks named and skipped, bounded input; the doctor
reads it strictly, the outbound client leniently and finds Bearer wherever it stands."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from authgate.doctor.flow import DoctorOptions, Flow
from authgate.doctor.profiles import PROFILES
from authgate.doctor.steps import discovery
from authgate.doctor.wire import Wire, bearer_challenge
from authgate.guard.challenge import bearer_challenge as authgate_bearer
from authgate.guard.challenge import dpop_challenge as authgate_dpop
from authgate.outbound.challenge import parse_challenge
from authgate.www_authenticate import MAX_CHALLENGES, MAX_HEADER, MAX_PARAMS, find_challenge, parse_challenges
from support import requirements as req

PRM = "https://h/.well-known/oauth-protected-resource/mcp"
pytestmark = pytest.mark.requirement(req.ISSUE15_WWW_AUTHENTICATE_PARSER)


def test_several_challenges_each_with_its_params() -> None:
    header = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        f'DPoP algs="ES256 RS256", Bearer scope="files:read mcp", resource_metadata="{PRM}"'
    )
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["Newauth", "Basic", "DPoP", "Bearer"]
    assert dict(challenges[0].params) == {"realm": "apps", "type": "1", "title": 'Login to "apps"'}
    assert challenges[2].get("algs") == "ES256 RS256"
    assert challenges[3].get("SCOPE") == "files:read mcp" and challenges[3].get("resource_metadata") == PRM
    assert all(c.problem is None and c.token68 is None for c in challenges)


def test_token68_empty_challenges_and_case() -> None:
    basic, negotiate, bearer = parse_challenges("Basic dXNlcjpwYXNz==, Negotiate abc=, bEaReR")
    assert (basic.token68, negotiate.token68, bearer.token68) == ("dXNlcjpwYXNz==", "abc=", None)
    assert bearer.params == {} and bearer.is_scheme("Bearer")
    # "abc=d" is an auth-param, not a token68; empty list elements are skipped (RFC 9110 §5.6.1)
    (only,) = parse_challenges(" , ,Bearer  abc=d ,")
    assert dict(only.params) == {"abc": "d"} and only.problem is None
    assert parse_challenges("Bearer realm = x")[0].get("realm") == "x"  # BWS around "="


def test_escapes_and_commas_inside_quoted_strings() -> None:
    (bearer,) = parse_challenges('Bearer error_description="a \\"b\\", c \\\\ d", error="x"')
    assert bearer.get("error_description") == 'a "b", c \\ d' and bearer.get("error") == "x"


def test_what_authgate_sends_parses_back() -> None:
    """The guard's own challenges, as two fields (Bearer, then DPoP) and as DPoP first in one."""
    bearer = authgate_bearer(resource_metadata=PRM, scopes=("a", "b"), error="invalid_token", description='x "y"')
    dpop = authgate_dpop(resource_metadata=PRM, scopes=("a", "b"), algs=("ES256", "Ed25519"))
    for fields in ([bearer, dpop], [f"{dpop}, {bearer}"]):
        found = find_challenge(fields, "bearer")
        assert found is not None and found.problem is None
        assert dict(found.params) == {
            "error": "invalid_token",
            "error_description": 'x "y"',
            "scope": "a b",
            "resource_metadata": PRM,
        }
        assert find_challenge(fields, "dpop").get("algs") == "ES256 Ed25519"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "kept", "problem"),
    [
        (f"Bearer resource_metadata={PRM}, scope=x", {"scope": "x"}, "neither a token nor a quoted-string"),
        ('Bearer realm="a"b, scope=x', {"scope": "x"}, "expected a quoted-string"),
        ("Bearer a=b c=d, scope=x", {"scope": "x"}, "expected a token or a quoted-string"),
        ("Bearer scope=a, scope=b", {"scope": "a"}, "scope given twice"),
        ("Bearer\trealm=x", {}, "expected SP after the auth-scheme"),
        ("Bearer =x", {}, "expected a token68 or an auth-param"),
    ],
)
def test_grammar_breaks_are_named_and_parsing_resumes(header: str, kept: dict[str, str], problem: str) -> None:
    (bearer, *rest) = parse_challenges(header + ', Basic realm="after"')
    assert dict(bearer.params) == kept and problem in (bearer.problem or "")
    assert [(c.scheme, dict(c.params)) for c in rest] == [("Basic", {"realm": "after"})]


def test_lenient_reading_keeps_an_unquoted_url_and_still_names_the_break() -> None:
    (bearer,) = parse_challenges(f"Bearer resource_metadata={PRM}", lenient=True)
    assert bearer.get("resource_metadata") == PRM and bearer.problem is not None


def test_input_is_bounded() -> None:
    assert parse_challenges("Bearer realm=" + "x" * MAX_HEADER) == []
    many = ", ".join(f"S{i}" for i in range(MAX_CHALLENGES + 5))
    assert len(parse_challenges(many)) == MAX_CHALLENGES
    (bearer,) = parse_challenges("Bearer " + ", ".join(f"p{i}=v" for i in range(MAX_PARAMS + 3)))
    assert len(bearer.params) == MAX_PARAMS and "more than" in (bearer.problem or "")
    assert parse_challenges("Bearer " + "\\" * 5000 + '"')[0].params == {}  # no runaway on escapes
    (open_quote,) = parse_challenges('Bearer realm="never closed, scope=x')
    assert open_quote.params == {} and "quoted-string" in (open_quote.problem or "")


def test_the_outbound_client_finds_bearer_after_dpop() -> None:
    header = f'DPoP algs="ES256", Bearer error="insufficient_scope", scope="files:write", resource_metadata="{PRM}"'
    challenge = parse_challenge(header)
    assert (challenge.error, challenge.scope, challenge.resource_metadata) == (
        "insufficient_scope",
        ("files:write",),
        PRM,
    )
    assert parse_challenge(f"Bearer resource_metadata={PRM}").resource_metadata == PRM  # lenient
    assert parse_challenge('DPoP algs="ES256"') == parse_challenge(None) == parse_challenge("Basic x")


def test_the_doctor_reads_strictly_and_reports_a_malformed_challenge() -> None:
    async def verdict(header: str) -> tuple[str, str]:
        wire = Wire()
        try:
            url = "https://mcp.example.com/mcp"
            flow = Flow(profile=PROFILES["claude"], options=DoctorOptions(url=url), wire=wire, url=url, port=1)
            flow.challenge = bearer_challenge(httpx.Headers([("www-authenticate", header)]))
            found = await discovery.www_authenticate(flow)
            return found.status, found.seen
        finally:
            await wire.aclose()

    status, summary = asyncio.run(verdict(f"Bearer resource_metadata={PRM}"))
    assert status == "fail" and "malformed" in summary
    status, summary = asyncio.run(verdict(f'DPoP algs="ES256", Bearer resource_metadata="{PRM}", scope="mcp"'))
    assert status == "pass" and PRM in summary
