"""A thin SQL layer over SQLite (embedded default) and PostgreSQL (at scale).

Statements are written once with `%s` placeholders and ANSI SQL that both engines accept
(`INSERT ... ON CONFLICT`); only the placeholder style differs.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from projections.runtime.read_store import CLUSTERED, Transaction

Tx = Transaction  # the read models' protocol, which these databases meet


class _SqliteTx:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _SqliteTx:
        self._cursor.execute(sql.replace("%s", "?"), params)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _SqliteTx:
        self._cursor.executemany(sql.replace("%s", "?"), rows)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class Database:
    """Transactions on one database; `for_update` rows lock only on PostgreSQL."""

    dialect: str

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Tx]:
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        """Release connections."""

    def script(self, statements: Sequence[str]) -> None:
        with self.transaction() as tx:
            for statement in statements:
                tx.execute(self._dialect(statement))

    def _dialect(self, statement: str) -> str:
        if self.dialect == "sqlite":
            return statement.replace(CLUSTERED, " WITHOUT ROWID")
        return statement

    @property
    def for_update(self) -> str:
        return " FOR UPDATE" if self.dialect == "postgresql" else ""

    @staticmethod
    def unavailable(error: BaseException) -> bool:
        """Whether the error means the database is away for now (see `unavailable`)."""
        return unavailable(error)

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Held while a process sets up its tables: SQLite serialises that by itself."""
        yield

    def ping(self) -> None:
        """Raises unless the database answers a query."""
        with self.transaction(read_only=True) as tx:
            tx.execute("SELECT 1").fetchone()


# Incidents, callers, notes and API key hashes: readable by the account that runs itsm only.
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


def private_directory(path: Path) -> None:
    """Creates `path` (and its missing parents) as 0700; one that exists is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIRECTORY)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIRECTORY)  # exactly, whatever the umask took away


def private_file(path: Path) -> None:
    """Creates an empty file as 0600 unless it exists (an empty file is an empty SQLite
    database). SQLite gives the -wal, -shm and -journal files it creates beside a database
    the database file's mode, so they are 0600 too."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)


MMAP_BYTES = 1 << 34  # address space, not memory: what is not read is never loaded


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # Also the event store's file: eventsourcing opens what this created.
            private_directory(Path(self.path).parent)
            private_file(Path(self.path))
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # Pages are read from the OS page cache the file is mapped from, shared by every
            # thread's connection, rather than copied into each one's own small cache: a
            # thread that has not read a table lately does not pay for it again.
            connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Tx]:
        connection = self._connection()
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking;
        # readers need no lock in WAL mode.
        connection.execute("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # a failed COMMIT too: never leave one open
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, max_size: int = 10, timeout: float = 5.0) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        # A connection that died with its server (a restart) is checked and replaced before
        # it is handed out; a server that is away fails fast rather than after 30 s.
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=True,
            timeout=timeout,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": False, "connect_timeout": max(int(timeout), 1), **_SESSION},
            reconnect_timeout=RECONNECT_SECONDS,
        )

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Tx]:
        with self._pool.connection() as connection:
            with connection.transaction():
                with connection.cursor() as cursor:
                    yield cursor

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Roles that start at once on one database take turns to set up the schema:
        PostgreSQL refuses concurrent DDL of one object (`CREATE TABLE IF NOT EXISTS`
        collides on the row type, `CREATE OR REPLACE FUNCTION` on the catalog row)."""
        with self._pool.connection() as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            connection.commit()
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
                connection.commit()

    def close(self) -> None:
        self._pool.close()


# How long a pool keeps retrying a connection it could not make. psycopg_pool doubles the
# wait between tries up to its reconnect_timeout (five minutes by default): after a 30 s
# outage, its next try could come 30 s after the server is back, and every request until
# then times out. Giving up after a few seconds instead, the pool tries again at once at
# the next request.
RECONNECT_SECONDS = 5.0
# A server that vanished is noticed by TCP keepalives; a lock or an abandoned transaction
# never holds the read models up for ever (a lock timeout is retried as "unavailable").
_SESSION = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c lock_timeout=30000 -c idle_in_transaction_session_timeout=300000",
}
_SCHEMA_LOCK = 0x1753_0001  # any constant no other application on the database uses

_UNAVAILABLE_ERRNOS = {
    errno.ENOSPC,
    errno.EIO,
    errno.EROFS,
    errno.EDQUOT,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EPIPE,
    errno.ETIMEDOUT,
}


def unavailable(error: BaseException) -> bool:
    """Whether the error says a database (or the disk under it) is away for now, rather
    than that one statement or value is wrong: worth retrying, never worth quarantining.
    PostgreSQL's SQLSTATE decides where the chain carries one."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    states = [state for e in chain if isinstance(state := getattr(e, "sqlstate", None), str)]
    if states:
        return any(_unavailable_state(state) for state in states)
    return any(_unavailable_here(e) for e in chain)


def _unavailable_state(state: str) -> bool:
    # 08 connection, 40 rollback (serialization, deadlock), 53 resources (disk full),
    # 57 operator intervention (shutdown), 58 system I/O; a lock or idle timeout, read-only
    # (a failover). Class 54 (a program limit, one value too large) is the event's own.
    return state[:2] in {"08", "40", "53", "57", "58"} or state in {"55P03", "25006", "25P03"}


def _unavailable_here(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in _UNAVAILABLE_ERRNOS or isinstance(
            error, (ConnectionError, TimeoutError)
        )
    # SQLite says "locked", "disk is full", "unable to open" and "disk I/O error" this way;
    # psycopg's covers a lost connection, a shutdown, a full disk, a pool timeout and a
    # serialization failure; eventsourcing re-raises both under the DB-API names.
    return any(
        kind.__name__ in ("OperationalError", "InterfaceError")
        and kind.__module__.split(".")[0] in _DRIVERS
        for kind in type(error).__mro__
    )


_DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "eventsourcing"}


def connect(url: str) -> Database:
    """`postgresql://...` or `sqlite:///path/to/file.db`."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite:///"):
        return SqliteDatabase(url.removeprefix("sqlite:///"))
    raise ValueError(f"unsupported database URL {url!r}: use postgresql://... or sqlite:///path")
