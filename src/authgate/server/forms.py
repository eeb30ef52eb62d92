"""Form bodies: `read_form(request, …)` answers as Starlette's `request.form(…)` does, with
`application/x-www-form-urlencoded` parsed here rather than by python-multipart (issue 18).

python-multipart parses a urlencoded body byte by byte through callbacks and a parser object
per request: ~20 µs for the few short fields of a token request or a consent form, of ~5 for
`str.split`. The outcome is the same, limits and errors included, as python-multipart's
`QuerystringParser` under Starlette's `FormParser` produce it: fields split at `&` (empty ones
skipped), a name and its value at the first `=` (no `=`: an empty value), both read as
latin-1 and then `unquote_plus`ed; a field's name and value together over `max_part_size`
bytes, or more than `max_fields` fields, refused with Starlette's messages, in the order
python-multipart meets them, as a 400 `HTTPException` inside the app (a `MultiPartException`
outside it). Any other content type (multipart/form-data above all) goes to `request.form()`.
The form is kept on the request as Starlette keeps it, so a later `request.form()` returns it.
"""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import unquote_plus

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

__all__ = ["read_form"]

_URLENCODED = b"application/x-www-form-urlencoded"


async def read_form(
    request: Request,
    *,
    max_files: int | float = 1000,
    max_fields: int | float = 1000,
    max_part_size: int = 1024 * 1024,
) -> FormData:
    """`await request.form(max_files=…, max_fields=…, max_part_size=…)`, cheaper for urlencoded bodies."""
    if request._form is not None:  # read before, by either
        return request._form
    content_type, _ = parse_options_header(request.headers.get("Content-Type"))
    if content_type != _URLENCODED:
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
    items: list[tuple[str, str | UploadFile]] = []
    for field in (await request.body()).decode("latin-1").split("&"):
        if not field:
            continue  # a leading, trailing or doubled separator starts no field
        name, _, value = field.partition("=")
        if len(name) + len(value) > max_part_size:
            _refuse(request, f"Field exceeded maximum size of {int(max_part_size / 1024)}KB.")
        if len(items) + 1 > max_fields:
            _refuse(request, f"Too many fields. Maximum number of fields is {max_fields}.")
        items.append((unquote_plus(name), unquote_plus(value)))
    request._form = FormData(items)
    return request._form


def _refuse(request: Request, message: str) -> NoReturn:
    if "app" in request.scope:  # as Starlette's Request._get_form
        raise HTTPException(status_code=400, detail=message)
    raise MultiPartException(message)
