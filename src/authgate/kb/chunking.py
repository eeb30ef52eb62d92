"""Cutting a document into passages: by heading, then by paragraph, with a little overlap.

A passage never spans two sections, so each one carries the heading path it sits under
("Guide > Install > Linux"), which is indexed with it and shown with every result. Within a
section, paragraphs (and whole fenced code blocks) are packed until the passage reaches
`target` characters, never more than `limit`; a paragraph longer than that is cut at line,
then sentence, then word boundaries. Each passage after the first in a section starts with the
end of the previous one (at most `overlap` characters), so a sentence that straddles the cut is
still found whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TARGET = 1000
LIMIT = 1200
OVERLAP = 150

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})")


@dataclass(frozen=True, slots=True)
class Chunk:
    heading: str  # the heading path, outermost first, joined by " > "; "" before any heading
    text: str


def chunk_document(
    text: str, *, headings: bool = True, target: int = TARGET, limit: int = LIMIT, overlap: int = OVERLAP
) -> list[Chunk]:
    """The passages of a Markdown-like text (`headings=False` for plain text)."""
    if not 0 <= overlap < limit // 2 or target > limit:
        raise ValueError("need 0 <= overlap < limit / 2 and target <= limit")
    chunks: list[Chunk] = []
    for heading, blocks in _sections(text, headings):
        chunks.extend(_pack(heading, blocks, target, limit, overlap))
    return chunks


def _sections(text: str, headings: bool) -> list[tuple[str, list[str]]]:
    """(heading path, paragraphs) per section, in document order; empty sections dropped."""
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    blocks: list[str] = []
    block: list[str] = []
    fence: str | None = None

    def end_block() -> None:
        if any(line.strip() for line in block):
            blocks.append("\n".join(block).strip("\n"))
        block.clear()

    def end_section() -> None:
        end_block()
        if blocks:
            sections.append((" > ".join(title for _, title in path), blocks.copy()))
        blocks.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if fence is not None:
            block.append(line)
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
            continue
        opening = _FENCE.match(stripped)
        heading = _HEADING.match(line) if headings else None
        if opening:
            fence = opening.group(1)
            block.append(line)
        elif heading:
            end_section()
            level = len(heading.group(1))
            path[:] = [entry for entry in path if entry[0] < level] + [(level, heading.group(2))]
        elif not stripped:
            end_block()
        else:
            block.append(line)
    end_section()
    return sections


def _pack(heading: str, blocks: list[str], target: int, limit: int, overlap: int) -> list[Chunk]:
    pieces = [piece for block in blocks for piece in _split_long(block, limit - overlap - 4)]
    chunks: list[Chunk] = []
    current: list[str] = []
    size = 0
    fresh = False  # does `current` hold anything beyond the overlap carried from the last chunk?
    for piece in pieces:
        if fresh and (size >= target or size + 2 + len(piece) > limit):
            chunks.append(Chunk(heading, "\n\n".join(current)))
            tail = _tail(current[-1], overlap)
            current, size, fresh = ([tail], len(tail), False) if tail else ([], 0, False)
        current.append(piece)
        size += len(piece) + (2 if len(current) > 1 else 0)
        fresh = True
    if fresh:
        chunks.append(Chunk(heading, "\n\n".join(current)))
    return chunks


def _tail(block: str, overlap: int) -> str:
    """The end of a passage to repeat at the start of the next, cut at a word boundary."""
    if overlap == 0:
        return ""
    if len(block) <= overlap:
        return block
    end = block[-overlap:]
    space = end.find(" ")
    return "…" + (end[space + 1 :] if 0 <= space < overlap // 2 else end)


def _split_long(block: str, max_len: int) -> list[str]:
    """A paragraph cut into pieces of at most `max_len`: at lines, then sentences, then words."""
    if len(block) <= max_len:
        return [block]
    by_line = "\n" in block
    units = block.split("\n") if by_line else re.split(r"(?<=[.!?])\s+", block)
    joiner = "\n" if by_line else " "
    pieces: list[str] = []
    current = ""
    for unit in units:
        for part in _hard_wrap(unit, max_len):
            if current and len(current) + 1 + len(part) > max_len:
                pieces.append(current)
                current = part
            else:
                current = f"{current}{joiner}{part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _hard_wrap(text: str, max_len: int) -> list[str]:
    parts: list[str] = []
    while len(text) > max_len:
        cut = text.rfind(" ", 0, max_len)
        if cut <= max_len // 2:
            cut = max_len
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
