"""A local knowledge base served over MCP: folders of Markdown, text and HTML, searched with
SQLite FTS5 (BM25). `authgate kb add NAME DIR…` registers folders; `authgate serve` protects
the server built by `authgate.kb.server.build_app(data_dir)`.

    documents.py  a file -> title, text, front-matter metadata
    chunking.py   text -> passages (by heading, then paragraph, with overlap)
    store.py      the SQLite index: schema, writes, BM25 search
    query.py      user text -> a safe FTS5 query; metadata normalization
    indexer.py    folders -> index changes (added, changed, removed files); the sample corpus
    service.py    async access and background indexing
    server.py     the MCP tools, over Streamable HTTP or stdio
"""
