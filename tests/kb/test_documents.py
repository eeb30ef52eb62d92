"""A file becomes a document: title, text and front-matter metadata."""

from __future__ import annotations

from authgate.kb.documents import parse_document, split_front_matter


def test_yaml_front_matter_scalars_and_lists_become_metadata() -> None:
    text = (
        "---\n"
        'title: "Quoted: title"\n'
        "tags: [alpha, 'beta', 3]\n"
        "draft: false\n"
        "weight: 2.5\n"
        "authors:\n"
        "  - ann\n"
        "  - bo\n"
        "nested:\n"
        "  key: ignored\n"
        "# a comment\n"
        "---\n"
        "# Heading\n\nBody.\n"
    )
    meta, body = split_front_matter(text)
    assert meta == {
        "title": "Quoted: title",
        "tags": ["alpha", "beta", 3],
        "draft": False,
        "weight": 2.5,
        "authors": ["ann", "bo"],
        "nested": None,
    }
    assert body == "# Heading\n\nBody.\n"


def test_toml_front_matter_is_read() -> None:
    meta, body = split_front_matter('+++\ntitle = "T"\ntags = ["x"]\n[table]\nk = 1\n+++\ntext\n')
    assert meta == {"title": "T", "tags": ["x"]}
    assert body == "text\n"


def test_unterminated_front_matter_is_plain_text() -> None:
    meta, body = split_front_matter("---\ntitle: x\nno end\n")
    assert meta == {}
    assert body.startswith("---")


def test_title_comes_from_front_matter_then_first_heading_then_file_name() -> None:
    assert parse_document("a.md", b"---\ntitle: Front\n---\n# Heading\n").title == "Front"
    assert parse_document("a.md", b"intro\n\n# First heading\n\n## Second\n").title == "First heading"
    assert parse_document("dir/release-notes_v2.md", b"no heading").title == "Release notes v2"
    assert parse_document("notes.txt", b"# not a heading in text files").title == "Notes"


def test_html_keeps_visible_text_headings_and_metadata() -> None:
    html = (
        b"<html><head><title>Page title</title><meta name='description' content='About it'>"
        b"<meta name='viewport' content='width=device-width'><style>p {}</style></head>"
        b"<body><script>alert('no')</script><h2>Section &amp; more</h2><p>First <b>bold</b> para.</p>"
        b"<ul><li>one</li><li>two</li></ul></body></html>"
    )
    doc = parse_document("page.html", html)
    assert doc.title == "Page title"
    assert doc.file_type == "html"
    assert doc.metadata == {"description": "About it"}
    assert "## Section & more" in doc.text
    assert "First bold para." in doc.text
    assert "- one" in doc.text and "- two" in doc.text
    assert "alert" not in doc.text and "p {}" not in doc.text


def test_undecodable_bytes_and_bom_do_not_fail() -> None:
    doc = parse_document("x.md", b"\xef\xbb\xbf# Caf\xe9\r\n\r\ntext\r\n")
    assert doc.title == "Caf\ufffd"
    assert "\r" not in doc.text
