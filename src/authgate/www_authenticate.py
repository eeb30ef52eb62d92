"""`WWW-Authenticate` (and `Proxy-Authenticate`) parsed by the challenge grammar of RFC 9110 §11.

    challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param  = token BWS "=" BWS ( token / quoted-string )
    token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="

A field value holds any number of challenges separated by commas (§11.6.1), and several fields
combine into one list (§5.3). One parser for the doctor (which reports what a server got wrong)
and the outbound client (which must find the Bearer challenge even after a `DPoP` one, as
authgate itself sends with DPoP on).

Every deviation from the grammar is recorded on its challenge (`problem`), and parsing picks up
again at the next comma. `lenient=True` keeps a bare value that is not a token (an unquoted URL,
`resource_metadata=https://h/prm`, as some servers send) instead of dropping it; the problem is
recorded either way. Input is bounded: a field over `MAX_HEADER` characters yields no challenge,
and at most `MAX_CHALLENGES` challenges of at most `MAX_PARAMS` parameters each are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_HEADER = 8192
MAX_CHALLENGES = 16
MAX_PARAMS = 32

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rf"[ \t]*({_TOKEN})")
# token BWS "=" BWS: the start of an auth-param
_NAME = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*")
_TOKEN_VALUE = re.compile(_TOKEN)
# qdtext / quoted-pair (§5.6.4): HTAB, SP, VCHAR except DQUOTE and backslash, obs-text
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_BARE = re.compile(r'[^\s,"]+')  # what a lenient reader takes for an unquoted value
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_END = re.compile(r"[ \t]*(?:,|$)")  # OWS, then the list's comma or the end
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme as sent, its auth-params (names lower-cased, the first
    occurrence wins: RFC 9110 §11.2 says each name occurs once) or its token68, and the first
    way it broke the grammar, if any."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None
    problem: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def is_scheme(self, scheme: str) -> bool:
        return self.scheme.lower() == scheme.lower()  # §11.1: schemes are case-insensitive


def parse_challenges(header: str | Iterable[str] | None, *, lenient: bool = False) -> list[Challenge]:
    """Every challenge in one field value, or in several (a list of field values)."""
    if header is None:
        return []
    values = [header] if isinstance(header, str) else list(header)
    challenges: list[Challenge] = []
    for value in values:
        if len(value) > MAX_HEADER:
            continue
        challenges += _Reader(value, lenient).challenges()
    return challenges[:MAX_CHALLENGES]


def find_challenge(header: str | Iterable[str] | None, scheme: str, *, lenient: bool = False) -> Challenge | None:
    """The first challenge of `scheme` (case-insensitive), wherever it stands in the list."""
    return next((c for c in parse_challenges(header, lenient=lenient) if c.is_scheme(scheme)), None)


class _Reader:
    def __init__(self, text: str, lenient: bool) -> None:
        self.text, self.lenient, self.pos = text, lenient, 0

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while len(found) < MAX_CHALLENGES:
            self._skip_empty_elements()
            if self.pos >= len(self.text):
                break
            scheme = _SCHEME.match(self.text, self.pos)
            if scheme is None:
                found.append(Challenge("", problem=self._broken("an auth-scheme")))
                continue
            self.pos = scheme.end()
            if not self._at_end() and self.text[self.pos] == " ":
                found.append(self._rest(scheme.group(1)))
            elif self._list_end():
                found.append(Challenge(scheme.group(1)))
            else:
                found.append(Challenge(scheme.group(1), problem=self._broken("SP after the auth-scheme")))
        return found

    def _rest(self, scheme: str) -> Challenge:
        """After `scheme 1*SP`: a token68 alone, else auth-params until the next challenge."""
        while self.text.startswith(" ", self.pos):
            self.pos += 1
        if self._list_end():
            return Challenge(scheme)
        start = self.pos
        token68 = _TOKEN68.match(self.text, start)
        if token68 is not None:
            self.pos = token68.end()
            if self._list_end():  # "abc=" before a comma is a token68; "abc=d" is an auth-param
                return Challenge(scheme, token68=token68.group())
            self.pos = start
        if _NAME.match(self.text, start) is None:
            return Challenge(scheme, problem=self._broken("a token68 or an auth-param"))
        params: dict[str, str] = {}
        problem: str | None = None
        while (name := _NAME.match(self.text, self.pos)) is not None:  # else the next challenge
            self.pos = name.end()
            value, why = self._value()
            key = name.group(1).lower()
            if value is not None and key in params:
                why = why or f"{key} given twice (the first counts)"
            elif value is not None and len(params) < MAX_PARAMS:
                params[key] = value
            elif value is not None:
                why = why or f"more than {MAX_PARAMS} auth-params"
            problem = problem or why
            self._skip_empty_elements()
        return Challenge(scheme, params, problem=problem)

    def _value(self) -> tuple[str | None, str | None]:
        """A token or quoted-string value and, when it broke the grammar, why."""
        text, start = self.text, self.pos
        if text.startswith('"', start):
            quoted = _QUOTED.match(text, start)
            if quoted is not None:
                self.pos = quoted.end()
                if self._list_end():
                    return _UNESCAPE.sub(r"\1", quoted.group(1)), None
            return None, self._broken("a quoted-string", start)
        token = _TOKEN_VALUE.match(text, start)
        if token is not None:
            self.pos = token.end()
            if self._list_end():
                return token.group(), None
        bare = _BARE.match(text, start)
        if bare is not None:
            self.pos = bare.end()
            if self._list_end():  # a value that is not a token: only a lenient reader keeps it
                return (bare.group() if self.lenient else None), _at(
                    start, f"{bare.group()[:40]!r} is neither a token nor a quoted-string"
                )
        return None, self._broken("a token or a quoted-string", start)

    def _list_end(self) -> bool:
        """Consume OWS and the list's comma (or reach the end); False when something else follows."""
        end = _END.match(self.text, self.pos)
        if end is None:
            return False
        self.pos = end.end()
        return True

    def _skip_empty_elements(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in ", \t":
            self.pos += 1

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def _broken(self, wanted: str, start: int | None = None) -> str:
        """Why the grammar broke; the reader skips to the next comma, outside a quoted-string."""
        at = self.pos if start is None else start
        self.pos = _next_comma(self.text, at)
        return _at(at, f"expected {wanted}")


def _at(pos: int, what: str) -> str:
    return f"at character {pos + 1}: {what}"


def _next_comma(text: str, pos: int) -> int:
    quoted = False
    while pos < len(text):
        char = text[pos]
        if quoted and char == "\\":
            pos += 1
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return pos + 1
        pos += 1
    return pos
