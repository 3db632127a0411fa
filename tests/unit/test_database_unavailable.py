"""Which errors mean "the database is away, retry" and which are one statement's own."""

from __future__ import annotations

import errno
import sqlite3

import psycopg.errors as pg
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from psycopg_pool import PoolTimeout

from infra.sql.database import unavailable


def raised_by_the_store(inner: Exception) -> Exception:
    """As eventsourcing re-raises a driver's error: its own class, the driver's as cause."""
    try:
        try:
            raise inner
        except Exception as error:
            raise StoreOperationalError(str(error)) from error
    except Exception as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("database or disk is full"),
        raised_by_the_store(pg.AdminShutdown("terminating connection")),
        raised_by_the_store(pg.DiskFull("could not extend file")),
        pg.OperationalError("server closed the connection unexpectedly"),  # no SQLSTATE
        pg.SerializationFailure("could not serialize access"),
        pg.LockNotAvailable("canceling statement due to lock timeout"),
        pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
        OSError(errno.ENOSPC, "No space left on device"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_database_that_is_away_is_retried(error):
    assert unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        raised_by_the_store(pg.ProgramLimitExceeded("index row size exceeds maximum")),
        pg.InvalidTextRepresentation("invalid input syntax"),
        pg.UniqueViolation("duplicate key value"),
        OverflowError("date value out of range"),
        ValueError("no working time"),
        OSError(errno.ENOENT, "No such file"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_one_statements_own_failure_is_not_an_outage(error):
    assert not unavailable(error)
