"""Indexing, re-indexing and search against the SQLite FTS5 index."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from authgate.kb.errors import InvalidKnowledgeBase, InvalidQuery, UnknownDataSource, UnknownKnowledgeBase
from authgate.kb.indexer import SAMPLE_DIR, SAMPLE_KB, Indexer, ensure_sample
from authgate.kb.models import SearchRequest
from authgate.kb.store import KnowledgeStore


def search(store: KnowledgeStore, query: str, **kw: object) -> list[str]:
    """The rel_paths of the results, best first."""
    return [p.rel_path for p in store.search(SearchRequest("company", query, **kw))]  # type: ignore[arg-type]


def test_sqlite_has_fts5() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    assert sqlite3.sqlite_version_info >= (3, 9, 0)


def test_indexing_reads_every_supported_file_and_records_counts(company: KnowledgeStore) -> None:
    kb = company.get_knowledge_base("company")
    assert [(ds.ds_id, ds.document_count, ds.status) for ds in kb.data_sources] == [
        ("engineering", 2, "ok"),
        ("handbook", 3, "ok"),
    ]
    assert kb.document_count == 5
    assert kb.chunk_count >= 7  # sections become passages
    assert kb.indexed_at is not None


def test_hidden_and_unsupported_files_are_ignored(store: KnowledgeStore, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for rel in ("a.md", ".hidden.md", ".git/x.md", "node_modules/y.md", "image.png", "b.markdown", "c.htm"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("content words")
    store.add_knowledge_base("docs", [root], now=time.time())
    report = Indexer(store).reindex("docs")
    assert report.added == 3
    assert sorted(store.indexed_files("docs", "docs")) == ["a.md", "b.markdown", "c.htm"]


def test_the_right_document_ranks_first(company: KnowledgeStore) -> None:
    assert search(company, "how many vacation days do I get")[0] == "vacation.md"
    assert search(company, "reimbursed hotel receipts")[0] == "expenses.md"
    assert search(company, "lost laptop")[0] == "security.txt"
    assert search(company, "canary rollback deploy")[0] == "deploys.md"
    assert search(company, "who gets paged, acknowledge alerts")[0] == "oncall.html"
    # stemming: "migrating schemas" finds "schema migrations"
    assert search(company, "migrating schemas")[0] == "deploys.md"


def test_a_passage_carries_its_source_heading_score_and_metadata(company: KnowledgeStore) -> None:
    best = company.search(SearchRequest("company", "request leave portal", top_k=3))
    top = best[0]
    assert (top.ds_id, top.rel_path, top.title) == ("handbook", "vacation.md", "Vacation policy")
    assert top.heading == "Vacation policy > Requesting leave"
    assert "HR portal" in top.text
    assert top.metadata == {"title": "Vacation policy", "category": "hr", "tags": ["leave", "policy"], "year": 2024}
    assert top.file_type == "markdown"
    assert top.score > 0 and [p.score for p in best] == sorted((p.score for p in best), reverse=True)


def test_script_and_style_text_of_html_is_not_searchable(company: KnowledgeStore) -> None:
    assert "oncall.html" not in search(company, "ignored")
    assert "oncall.html" not in search(company, "color red")


def test_top_k_limits_results(company: KnowledgeStore) -> None:
    assert len(search(company, "policy days deploy laptop", top_k=2)) == 2


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"category": "hr"}, {"vacation.md"}),
        ({"category": "HR"}, {"vacation.md"}),  # case-insensitive
        ({"tags": "policy"}, {"vacation.md", "expenses.md"}),  # a list value matches any item
        ({"tags": "policy", "year": 2023}, {"expenses.md"}),  # all filters must hold
        ({"year": "2024"}, {"vacation.md"}),  # 2024 == "2024"
        ({"file_type": "html"}, {"oncall.html"}),
        ({"category": "nope"}, set()),
    ],
)
def test_metadata_filters_keep_only_matching_documents(
    company: KnowledgeStore, filters: dict[str, object], expected: set[str]
) -> None:
    found = search(company, "policy days receipts paged deploys laptop engineer", top_k=50, metadata_filters=filters)
    assert set(found) == expected


def test_data_source_ids_restrict_the_search(company: KnowledgeStore) -> None:
    everywhere = search(company, "days minutes hour", top_k=50)
    assert {"vacation.md", "oncall.html"} <= set(everywhere)
    only_eng = search(company, "days minutes hour", top_k=50, data_source_ids=("engineering",))
    assert set(only_eng) == {"oncall.html"}
    assert search(company, "days minutes hour", top_k=50, data_source_ids=()) == []


def test_an_unknown_data_source_is_refused_with_the_known_ones(company: KnowledgeStore) -> None:
    with pytest.raises(UnknownDataSource, match="engineering, handbook"):
        search(company, "days", data_source_ids=("handbook", "wiki"))


def test_an_unknown_knowledge_base_is_refused_with_the_known_ones(company: KnowledgeStore) -> None:
    with pytest.raises(UnknownKnowledgeBase, match="company"):
        company.search(SearchRequest("nope", "days"))


@pytest.mark.parametrize(
    "hostile",
    [
        '"',
        '"unbalanced quote',
        "vacation AND",
        "AND OR NOT",
        "NEAR(vacation days, 2)",
        "vaca*",
        "*",
        "(days",
        "days)",
        "title:vacation",
        "^days",
        "col:(x OR y)",
        "a - b + c",
        "'; DROP TABLE documents; --",
        "ü ß 日本語",
        "{days}",
        "days\x00",
        "-vacation",
        "vacation NOT days",
    ],
)
def test_fts_syntax_in_queries_is_never_an_error(company: KnowledgeStore, hostile: str) -> None:
    try:
        company.search(SearchRequest("company", hostile))
    except InvalidQuery:
        pass  # only for text without a single letter or digit
    assert company.get_knowledge_base("company").document_count == 5


def test_operators_are_plain_words(company: KnowledgeStore) -> None:
    assert search(company, "vacation AND NOT days")[0] == "vacation.md"
    assert search(company, "vaca*") == []  # no prefix search: "vaca" is a word like any other


@pytest.mark.parametrize("empty", ["", "   ", "\n", "?!*()", '""'])
def test_an_empty_query_is_refused_clearly(company: KnowledgeStore, empty: str) -> None:
    with pytest.raises(InvalidQuery, match="empty|no searchable words"):
        company.search(SearchRequest("company", empty))


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_reindex_picks_up_added_changed_and_removed_files(company: KnowledgeStore, corpus: Path) -> None:
    assert search(company, "kangaroo") == []
    (corpus / "handbook" / "pets.md").write_text("# Pets\n\nA kangaroo may come to the office on Fridays.\n")
    _bump(corpus / "handbook" / "expenses.md", "# Travel expenses\n\nBicycles are reimbursed now.\n")
    (corpus / "engineering" / "deploys.md").unlink()

    report = Indexer(company).reindex("company")

    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 3)
    assert search(company, "kangaroo") == ["pets.md"]
    assert search(company, "bicycles") == ["expenses.md"]
    assert search(company, "hotel receipts") == []  # the old text is gone
    assert "deploys.md" not in search(company, "canary rollback deploy migrations")
    assert company.get_knowledge_base("company").document_count == 5
    again = Indexer(company).reindex("company")
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 5)


def test_a_touched_but_unchanged_file_is_not_reparsed(company: KnowledgeStore, corpus: Path) -> None:
    path = corpus / "handbook" / "vacation.md"
    before = company.indexed_files("company", "handbook")["vacation.md"]
    _bump(path, path.read_text())
    report = Indexer(company).reindex("company")
    after = company.indexed_files("company", "handbook")["vacation.md"]
    assert (report.updated, report.unchanged) == (0, 5)
    assert after.doc_id == before.doc_id and after.mtime_ns != before.mtime_ns


def test_a_missing_folder_keeps_its_passages_and_is_reported(company: KnowledgeStore, corpus: Path) -> None:
    (corpus / "engineering").rename(corpus / "elsewhere")
    report = Indexer(company).reindex("company")
    assert report.missing_sources == ["engineering"]
    assert search(company, "canary")[0] == "deploys.md"
    sources = {ds.ds_id: ds.status for ds in company.get_knowledge_base("company").data_sources}
    assert sources == {"engineering": "missing", "handbook": "ok"}


def test_an_oversized_file_is_skipped_and_leaves_the_index(
    company: KnowledgeStore, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import authgate.kb.indexer as indexer

    monkeypatch.setattr(indexer, "MAX_FILE_BYTES", 100)
    report = Indexer(company).reindex("company")
    assert any(line.startswith("vacation.md: larger than") for line in report.skipped)
    assert "vacation.md" not in search(company, "vacation")


def test_an_interrupted_pass_removes_nothing(company: KnowledgeStore, corpus: Path) -> None:
    (corpus / "handbook" / "vacation.md").unlink()
    report = Indexer(company, should_stop=lambda: True).reindex("company")
    assert report.stopped and report.removed == 0
    assert search(company, "vacation")[0] == "vacation.md"


def test_removing_a_knowledge_base_removes_its_passages(company: KnowledgeStore, store: KnowledgeStore) -> None:
    company.remove_knowledge_base("company")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM doc_meta").fetchone()[0] == 0


def test_adding_folders_to_an_existing_knowledge_base(company: KnowledgeStore, tmp_path: Path) -> None:
    extra = tmp_path / "more" / "handbook"  # same folder name as an existing source
    extra.mkdir(parents=True)
    (extra / "x.md").write_text("zebra crossing")
    kb = company.add_knowledge_base("company", [extra], now=time.time())
    assert [ds.ds_id for ds in kb.data_sources] == ["engineering", "handbook", "handbook-2"]
    Indexer(company).reindex("company")
    assert search(company, "zebra", data_source_ids=("handbook-2",)) == ["x.md"]


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 65, "a/b"])
def test_knowledge_base_names_are_checked(store: KnowledgeStore, name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidKnowledgeBase, match="not a valid id"):
        store.add_knowledge_base(name, [tmp_path], now=time.time())


def test_the_sample_corpus_is_registered_only_when_there_is_no_knowledge_base(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    kb = ensure_sample(store, time.time())
    assert kb is not None and kb.kb_id == SAMPLE_KB and kb.builtin
    assert kb.data_sources[0].path == SAMPLE_DIR
    Indexer(store).reindex(SAMPLE_KB)
    found = store.search(SearchRequest(SAMPLE_KB, "connect ChatGPT connector", top_k=1))
    assert found[0].rel_path == "connecting-chatgpt.md"
    assert ensure_sample(store, time.time()) is None
    assert [k.kb_id for k in store.list_knowledge_bases()] == [SAMPLE_KB]

    other = KnowledgeStore(tmp_path / "other.sqlite3")
    other.open()
    other.add_knowledge_base("mine", [tmp_path], now=time.time())
    assert ensure_sample(other, time.time()) is None
    assert [k.kb_id for k in other.list_knowledge_bases()] == ["mine"]


def test_a_newer_schema_is_refused(store: KnowledgeStore) -> None:
    from authgate.errors import StoreError

    with sqlite3.connect(store.path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer authgate"):
        KnowledgeStore(store.path).open()
