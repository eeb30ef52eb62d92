"""Fixtures for the knowledge base: a small corpus written per test, a store and indexer on
it, and the KB MCP app served by uvicorn on a loopback port in a thread (bounded waits)."""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from starlette.applications import Starlette

from authgate.kb.indexer import Indexer
from authgate.kb.store import KnowledgeStore
from support.authgate_server import serve_asgi_in_thread

# A corpus where each question has exactly one right document.
CORPUS: dict[str, str] = {
    "handbook/vacation.md": """\
        ---
        title: Vacation policy
        category: hr
        tags: [leave, policy]
        year: 2024
        ---
        # Vacation policy

        Every employee gets twenty-five days of paid vacation per calendar year. Unused vacation
        days carry over until the end of March of the following year.

        ## Requesting leave

        Request leave in the HR portal at least two weeks ahead. Your manager approves it.
        """,
    "handbook/expenses.md": """\
        ---
        title: Travel expenses
        category: finance
        tags: [travel, policy]
        year: 2023
        ---
        # Travel expenses

        Book trains for journeys under four hours. Hotel costs are reimbursed up to the city
        limit. Submit receipts within thirty days.
        """,
    "handbook/security.txt": """\
        Laptop security

        Encrypt your disk, lock the screen when you leave the desk, and report a lost laptop to
        the security team within one hour.
        """,
    "engineering/deploys.md": """\
        ---
        title: Deploying services
        category: engineering
        tags: [ops]
        ---
        # Deploying services

        Deploys go through the pipeline: merge to main, wait for the canary, then promote.
        Rollbacks use the previous image tag.

        ## Database migrations

        Run schema migrations before the deploy that needs them; never drop a column in the
        same release that stops using it.
        """,
    "engineering/oncall.html": """\
        <html><head><title>On-call rotation</title>
        <meta name="description" content="who is paged when">
        <style>.x { color: red }</style><script>var paged = "ignored";</script></head>
        <body><h1>On-call rotation</h1>
        <p>The on-call engineer is paged by the alerting system and acknowledges within
        fifteen minutes.</p><h2>Handover</h2><ul><li>Weekly, on Monday</li><li>Write notes</li></ul>
        </body></html>
        """,
}


def write_corpus(root: Path, files: dict[str, str] = CORPUS) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def store(tmp_path: Path) -> KnowledgeStore:
    kb_store = KnowledgeStore(tmp_path / "data" / "kb.sqlite3")
    kb_store.open()
    return kb_store


@pytest.fixture
def company(store: KnowledgeStore, corpus: Path) -> KnowledgeStore:
    """`store` with knowledge base `company` = handbook/ + engineering/, indexed."""
    store.add_knowledge_base(
        "company", [corpus / "handbook", corpus / "engineering"], description="company docs", now=time.time()
    )
    Indexer(store).reindex("company")
    return store


def serve_in_thread(app: Starlette) -> contextlib.AbstractContextManager[str]:
    """Run `app` under uvicorn (lifespan on) on a free loopback port; yield its base URL."""
    return serve_asgi_in_thread(app, lifespan="on")


@pytest.fixture
def serve_app() -> Iterator[Callable[[Starlette], str]]:
    """`base_url = serve_app(app)`: served until the end of the test."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))
