"""The database a read model is written to, as the projection runtime needs it.

The read models own this protocol; the adapters (infra/sql/database.py: SQLite, PostgreSQL) meet it.
Statements use `%s` placeholders and SQL both engines accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

# One row of a query: its values as the database returns them, in the order selected.
Row = tuple[Any, ...]


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


# Ends a CREATE TABLE whose rows are best stored in key order: SQLite makes it a WITHOUT
# ROWID table (a range of the key is then one contiguous read); PostgreSQL reads a comment.
CLUSTERED = " /* clustered on its primary key */"


class ReadStore(Protocol):
    dialect: str

    def transaction(self, read_only: bool = False) -> AbstractContextManager[Transaction]: ...

    def script(self, statements: Sequence[str]) -> None: ...

    @property
    def for_update(self) -> str:
        """ " FOR UPDATE" where rows lock (PostgreSQL), else ""."""
        ...

    def unavailable(self, error: BaseException) -> bool:
        """Whether the error means the database is away for now (retry, never quarantine)."""
        ...


def rows_where_in(
    tx: Transaction, sql: str, params: Sequence[object], keys: Iterable[object], chunk: int = 500
) -> list[Row]:
    """Rows of `sql` (ending in a column name) + ` IN (...keys)`, in chunks of bound keys."""
    listed, rows = list(keys), []
    for start in range(0, len(listed), chunk):
        part = listed[start : start + chunk]
        rows += tx.execute(
            f"{sql} IN ({', '.join(['%s'] * len(part))})", [*params, *part]
        ).fetchall()
    return rows


@contextmanager
def savepoint(tx: Transaction) -> Iterator[None]:
    """Undo only this part of the transaction if it fails (both engines support it)."""
    tx.execute("SAVEPOINT fold")
    try:
        yield
    except BaseException:
        tx.execute("ROLLBACK TO SAVEPOINT fold")
        tx.execute("RELEASE SAVEPOINT fold")
        raise
    tx.execute("RELEASE SAVEPOINT fold")
