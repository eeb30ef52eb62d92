"""`masked_url`: a URL as it may be printed — in a start-up line, a log, an error, a check's
report — with what could be a secret in it masked.

Operators' URLs carry secrets in two places: the userinfo (`https://user:PASSWORD@host`, or a
token alone, `https://TOKEN@host`) and the query (`?token=…`, `?key=…`, `?sig=…`: too many
names to list, and the values are never needed to say where something failed). So a password
becomes `***` (the user name stays), a lone userinfo becomes `***`, every query value becomes
`***` (the names stay), and a fragment is dropped. A secret written into the path cannot be
told apart from the path and is shown: keep credentials in headers (`upstream_headers`,
`upstream_bearer_token`), as the settings say.

`masked_urls` does the same to every URL inside a text, such as a client library's exception.

Imports nothing: config, the gateway, the IdP code, the doctor and the CLI all print URLs.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "masked_url", "masked_urls"]

MASK = "***"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")  # up to a space or a quote: as messages embed URLs


def masked_url(url: str) -> str:
    """`url` with its password (or lone userinfo) and query values masked, its fragment dropped.
    Errs on the side of masking: text that is not quite a URL is masked where it might be one."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, _, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority_end = len(rest) if "/" not in rest else rest.index("/")
    at = rest.rfind("@", 0, authority_end)
    if at < 0 and "@" in rest[authority_end:]:
        _host, colon, after = rest[:authority_end].rpartition(":")
        if colon and not after.isdigit():  # user:pa/ss@host: an unencoded "/" cut the authority short
            at = rest.rfind("@")
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        rest = (f"{user}:{MASK}" if colon else MASK) + rest[at:]
    masked = f"{scheme}{sep}{rest}"
    if question:
        masked += "?" + "&".join(_masked_pair(pair) for pair in query.split("&"))
    return masked


def masked_urls(text: str) -> str:
    """`text` (an exception's message, say) with every URL in it masked as `masked_url` does."""
    return _URL.sub(lambda found: masked_url(found.group(0)), text)


def _masked_pair(pair: str) -> str:
    name, equals, _value = pair.partition("=")
    if not equals:
        return MASK if name else ""  # a bare value (`?s3cr3t`) may be the secret itself
    return f"{name}={MASK}"
