"""The OAuth flow's statements on an SQLite file without SQLAlchemy's execution layer.

`sqlite_direct.DirectTx` runs the store's statements with SQLAlchemy Core on the stdlib
`sqlite3` connection. For a statement built once (the module constants of `grants.py` and
`store.py`, marked with `prepared()`) SQLAlchemy still looks its compiled form up in its
cache, builds an execution context, runs the bind processors and wraps the cursor in a result
with its own processors: ~20 µs a statement, measured, where SQLite's own work is a few
(docs/benchmarks.md, "OAuth flows"). Here such a statement is compiled once (per set of
parameter names: an INSERT's columns are the names given) to SQLite's SQL text, with the
positions of its parameters, the literal values it carries and the type conversions of its
parameters and columns taken from SQLAlchemy's own types — so a value goes to SQLite and a
row comes back exactly as through SQLAlchemy, and the same statement runs unchanged on
PostgreSQL. A failure is raised as SQLAlchemy would raise it (`sa.exc.DBAPIError.instance`:
an `IntegrityError` stays one, "database is locked" an `OperationalError` around sqlite3's),
so `database.py`'s rules see no difference. Statements not marked, and anything a compiled
form would not carry (expanding IN lists, literal-execute parameters), take SQLAlchemy's path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["DirectResult", "Prepared", "is_prepared", "prepare", "prepared"]

_OPTION = "authgate_prepared"
REQUIRED_BIND = object()  # a parameter the statement has no value of its own for
E = TypeVar("E", bound=sa.Executable)


def prepared(statement: E) -> E:
    """Mark a statement built once (a module constant, or cached per instance) to be run on an
    SQLite file from its compiled SQL text (`prepare`). Never mark one built per call: its
    compiled forms are kept as long as the process runs."""
    return statement.execution_options(**{_OPTION: True})


def is_prepared(statement: sa.Executable) -> bool:
    return bool(statement.get_execution_options().get(_OPTION))


class Prepared:
    """One statement compiled for SQLite with one set of parameter names."""

    __slots__ = ("binds", "columns", "processors", "sql", "statement")

    def __init__(self, statement: sa.Executable, keys: tuple[str, ...], dialect: Dialect) -> None:
        self.statement = statement  # held: the cache is keyed by its id
        compiled: Any = cast(Any, statement).compile(dialect=dialect, column_keys=list(keys))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement with parameters rendered at execution cannot be prepared")
        self.sql: str = compiled.string
        processors = compiled._bind_processors  # the types' conversions, as SQLAlchemy applies them
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            default = REQUIRED_BIND if bind.required else bind.effective_value
            binds.append((name, processors.get(name), default))
        self.binds: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...] = tuple(binds)
        columns = compiled._result_columns
        self.columns: tuple[str, ...] = tuple(c[0] for c in columns)
        self.processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            c[3]._cached_result_processor(dialect, None) for c in columns
        )

    def values(self, parameters: Mapping[str, Any] | None) -> tuple[Any, ...]:
        given = parameters or {}
        out = []
        for name, process, default in self.binds:
            value = given.get(name, default)
            if value is REQUIRED_BIND:
                raise sa.exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            out.append(value if process is None else process(value))
        return tuple(out)

    def run(self, raw: sqlite3.Connection, parameters: Mapping[str, Any] | None) -> DirectResult:
        values = self.values(parameters)
        try:
            cursor = raw.execute(self.sql, values)
            rows = cursor.fetchall() if self.columns else []
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it (database.py, engine.unavailable)
            raise sa.exc.DBAPIError.instance(self.sql, values, exc, sqlite3.Error) from exc
        return DirectResult(self, rows, cursor.rowcount)


def prepare(
    cache: dict[tuple[int, tuple[str, ...]], Prepared],
    statement: sa.Executable,
    parameters: Mapping[str, Any] | None,
    dialect: Dialect,
) -> Prepared | None:
    """The compiled form of a marked statement for these parameter names (made once), or None
    when it cannot be prepared (SQLAlchemy's path then runs it)."""
    keys = tuple(parameters) if parameters else ()
    key = (id(statement), keys)
    found = cache.get(key)
    if found is None:
        try:
            found = Prepared(statement, keys, dialect)
        except (ValueError, sa.exc.CompileError):
            return None
        cache[key] = found
    return found


class DirectResult:
    """What the store reads of a result (`rowcount`, `first`, `all`, `scalar`, `scalars`,
    `mappings`), with each value converted by its column's type as SQLAlchemy would."""

    __slots__ = ("_prepared", "_rows", "rowcount")

    def __init__(self, prepared: Prepared, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._prepared = prepared
        self._rows = rows
        self.rowcount = rowcount

    def _convert(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v if p is None else p(v) for p, v in zip(self._prepared.processors, row, strict=True))

    def first(self) -> tuple[Any, ...] | None:
        return self._convert(self._rows[0]) if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return [self._convert(r) for r in self._rows]

    def scalar(self) -> Any:
        row = self.first()
        return row[0] if row is not None else None

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self.all())

    def mappings(self) -> _Mappings:
        return _Mappings(self)


class _Mappings:
    __slots__ = ("_result",)

    def __init__(self, result: DirectResult) -> None:
        self._result = result

    def first(self) -> dict[str, Any] | None:
        row = self._result.first()
        return dict(zip(self._result._prepared.columns, row, strict=True)) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        columns = self._result._prepared.columns
        return [dict(zip(columns, row, strict=True)) for row in self._result.all()]
