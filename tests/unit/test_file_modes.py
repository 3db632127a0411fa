"""The SQLite files hold incidents, callers, notes and API key hashes: 0600, in a data
directory that is 0700 when the process creates it, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.composition_root import bootstrap
from infra.settings import Settings
from infra.sql.database import SqliteDatabase


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022) would leave new files readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_database_its_wal_and_shm_files_and_a_new_directory_are_private(tmp_path):
    path = tmp_path / "new" / "read.db"
    database = SqliteDatabase(path)
    with database.transaction() as tx:  # WAL mode: the -wal and -shm files appear
        tx.execute("CREATE TABLE t (x INTEGER)").execute("INSERT INTO t VALUES (%s)", (1,))
    try:
        files = {p.name: mode(p) for p in path.parent.iterdir()}
        assert files == {"read.db": 0o600, "read.db-wal": 0o600, "read.db-shm": 0o600}
        assert mode(path.parent) == 0o700
    finally:
        database.close()


def test_an_existing_directory_and_database_keep_their_modes(tmp_path):
    (tmp_path / "shared").mkdir(mode=0o750)
    existing = tmp_path / "shared" / "read.db"
    existing.touch(mode=0o640)
    SqliteDatabase(existing).ping()
    assert (mode(existing.parent), mode(existing)) == (0o750, 0o640)


def test_the_event_store_and_read_model_files_of_the_service_desk_are_private(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path / "var"))
    container.keys.create("agent", "alice")  # a write to the event store's database
    try:
        files = {p.name: mode(p) for p in (tmp_path / "var").iterdir()}
    finally:
        container.close()
    expected = {
        f"{db}.db{suffix}" for db in ("events", "readmodels") for suffix in ("", "-wal", "-shm")
    }
    assert expected <= set(files)
    assert {name: 0o600 for name in files} == files


def test_the_data_directory_is_private_when_the_service_desk_creates_it(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path / "var"))
    container.close()
    assert mode(tmp_path / "var") == 0o700
