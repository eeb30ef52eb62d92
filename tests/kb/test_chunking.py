"""Passages: cut at headings, packed by paragraph within the size bounds, with overlap."""

from __future__ import annotations

import pytest

from authgate.kb.chunking import LIMIT, Chunk, chunk_document


def test_each_section_is_its_own_passage_under_its_heading_path() -> None:
    text = "intro line\n\n# Guide\n\nabout\n\n## Install\n\ndo this\n\n### Linux\n\napt\n\n## Use\n\nrun\n"
    assert chunk_document(text) == [
        Chunk("", "intro line"),
        Chunk("Guide", "about"),
        Chunk("Guide > Install", "do this"),
        Chunk("Guide > Install > Linux", "apt"),
        Chunk("Guide > Use", "run"),
    ]


def test_a_heading_inside_a_code_fence_is_code_and_the_fence_stays_whole() -> None:
    text = "# Real\n\n```bash\n# not a heading\n\necho hi\n```\n\nafter\n"
    chunks = chunk_document(text)
    assert [c.heading for c in chunks] == ["Real"]
    assert "```bash\n# not a heading\n\necho hi\n```" in chunks[0].text


def test_plain_text_has_no_headings() -> None:
    assert chunk_document("# hash line\n\npara\n", headings=False) == [Chunk("", "# hash line\n\npara")]


def test_long_sections_are_cut_within_bounds_with_overlap() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 60 + "end." for i in range(20)]
    chunks = chunk_document("# Long\n\n" + "\n\n".join(paragraphs))
    assert len(chunks) > 3
    assert all(len(c.text) <= LIMIT for c in chunks)
    assert all(len(c.text) >= 600 for c in chunks[:-1])
    for before, after in zip(chunks, chunks[1:], strict=False):
        carried = after.text.split("\n\n")[0].lstrip("…")
        assert before.text.endswith(carried), "each passage starts with the end of the previous one"
    everything = "".join(c.text for c in chunks)
    assert all(f"Paragraph {i} " in everything for i in range(20))


def test_one_huge_paragraph_is_cut_at_sentences_then_words() -> None:
    sentence = "This sentence is about forty-five chars long. "
    chunks = chunk_document(sentence * 100)
    assert len(chunks) >= 4
    assert all(len(c.text) <= LIMIT for c in chunks)
    unbroken = chunk_document("x" * 5000)
    assert all(len(c.text) <= LIMIT for c in unbroken)
    assert sum(c.text.count("x") for c in unbroken) >= 5000


def test_empty_text_has_no_passages() -> None:
    assert chunk_document("") == []
    assert chunk_document("# Only a heading\n\n## And another\n") == []


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        chunk_document("x", target=2000, limit=1000)
