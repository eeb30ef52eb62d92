"""Turning a file into a document: its text, title and front-matter metadata.

Markdown and plain text are read as they are; HTML is flattened to Markdown-like text with the
standard library's `html.parser` (headings become `#` lines so the chunker can follow them).
Front matter is YAML between `---` lines (a flat subset: scalars, inline `[a, b]` lists and
`- item` lists, which covers what static-site generators write) or TOML between `+++` lines.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

# file suffix -> file type
FILE_TYPES: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
}

MetaValue = str | int | float | bool | None | list[str | int | float | bool]


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    text: str  # Markdown-like: ATX headings are structure, blank lines separate paragraphs
    file_type: str
    metadata: dict[str, MetaValue] = field(default_factory=dict)

    @property
    def has_headings(self) -> bool:
        return self.file_type != "text"


def file_type_of(name: str) -> str | None:
    return FILE_TYPES.get(PurePosixPath(name).suffix.lower())


def parse_document(rel_path: str, raw: bytes) -> Document:
    """Decode and parse one file; the file type comes from its suffix."""
    file_type = file_type_of(rel_path) or "text"
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\r\n", "\n")
    if file_type == "html":
        parser = _HtmlText()
        parser.feed(text)
        parser.close()
        body, metadata, title = parser.markdown(), parser.meta, parser.title
    else:
        metadata, body = split_front_matter(text)
        title = ""
    declared = metadata.get("title")
    title = (declared if isinstance(declared, str) and declared.strip() else "") or title
    if not title and file_type != "text":
        title = _first_h1(body)
    return Document(title or _title_from_name(rel_path), body, file_type, metadata)


def _first_h1(text: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1) if match else ""


def _title_from_name(rel_path: str) -> str:
    stem = PurePosixPath(rel_path).stem
    words = re.sub(r"[-_]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else rel_path


# -- front matter -----------------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[dict[str, MetaValue], str]:
    """(metadata, body); text without a well-formed front-matter block comes back whole."""
    for fence, parse in (("---", _parse_yaml_subset), ("+++", _parse_toml)):
        if text.startswith(fence + "\n"):
            end = text.find("\n" + fence, len(fence))
            if end == -1:
                return {}, text
            after = text.find("\n", end + 1 + len(fence))
            body = "" if after == -1 else text[after + 1 :]
            return parse(text[len(fence) + 1 : end + 1]), body
    return {}, text


def _parse_toml(block: str) -> dict[str, MetaValue]:
    try:
        data = tomllib.loads(block)
    except tomllib.TOMLDecodeError:
        return {}
    return {str(k).strip(): v for k, v in data.items() if _is_meta_value(v)}


def _is_meta_value(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return (
        value is None
        or isinstance(value, scalar)
        or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
    )


_KEY_LINE = re.compile(r"^([A-Za-z0-9_][\w .-]*?)\s*:(?:\s+(.*?))?\s*$")
_ITEM_LINE = re.compile(r"^\s+-\s+(.*?)\s*$")


def _parse_yaml_subset(block: str) -> dict[str, MetaValue]:
    meta: dict[str, MetaValue] = {}
    pending: str | None = None  # a key whose value is a `- item` list below it
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = _ITEM_LINE.match(line)
        if item and pending is not None:
            items, value = meta.get(pending), _yaml_scalar(item.group(1))
            if isinstance(items, list) and value is not None:
                items.append(value)
            continue
        key_line = _KEY_LINE.match(line)
        pending = None
        if key_line is None:
            continue  # nested mappings and other YAML beyond the subset are ignored
        key, value = key_line.group(1).strip(), (key_line.group(2) or "").strip()
        if not value:
            meta[key], pending = [], key
        elif value.startswith("[") and value.endswith("]"):
            parts = [p.strip() for p in value[1:-1].split(",") if p.strip()]
            meta[key] = [v for v in map(_yaml_scalar, parts) if v is not None]
        else:
            meta[key] = _yaml_scalar(value)
    return {k: (None if v == [] else v) for k, v in meta.items()}


def _yaml_scalar(raw: str) -> str | int | float | bool | None:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    raw = re.sub(r"\s+#.*$", "", raw)  # a trailing comment
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


# -- HTML -------------------------------------------------------------------------------------

_SKIPPED = {"script", "style", "noscript", "template", "svg", "head"}
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "ul",
    "ol",
    "table",
    "tr",
    "blockquote",
    "pre",
    "figure",
    "dl",
    "dt",
    "dd",
    "hr",
    "form",
}
_META_NAMES = {"description", "keywords", "author"}


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, headings as `#` lines, blocks as paragraphs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.meta: dict[str, MetaValue] = {}
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = dict(attrs)
            name, content = (values.get("name") or "").lower(), values.get("content")
            if name in _META_NAMES and content:
                self.meta[name] = content
        if tag in _SKIPPED:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skip:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))

    def markdown(self) -> str:
        text = "".join(self.parts)
        lines = [line.strip() for line in text.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
