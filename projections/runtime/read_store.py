"""The database a read model is written to, as the projection runtime needs it.

The read models own this protocol; the adapters (infra/sql/database.py: SQLite, PostgreSQL) meet it.
Statements use `%s` placeholders and SQL both engines accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


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
