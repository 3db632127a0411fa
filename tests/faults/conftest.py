"""Fixtures of the fault suite: servers a test may kill, and where recovery figures go."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import Figures, stop_started
from tests.faults.servers import RestartableBroker, RestartablePostgres


@pytest.fixture(scope="session")
def recovery_figures(tmp_path_factory: pytest.TempPathFactory) -> Figures:
    return Figures(tmp_path_factory.getbasetemp() / "faults-recovery.txt")


@pytest.fixture(autouse=True)
def _stop_load_and_probes() -> Iterator[None]:
    """However a test ends, its HTTP load and readiness threads stop with it."""
    try:
        yield
    finally:
        stop_started()


@pytest.fixture
def own_broker(tmp_path) -> Iterator[RestartableBroker]:
    """A broker of this test alone (not the session's), started; stopped however it ends."""
    broker = RestartableBroker(tmp_path / "kafka")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_postgres(tmp_path) -> Iterator[RestartablePostgres]:
    """A PostgreSQL server of this test alone, started; stopped and removed however it ends
    (its log kept as postgres.log in the test's tmp dir)."""
    server = RestartablePostgres(keep_log=tmp_path / "postgres.log")
    try:
        server.start()
        yield server
    finally:
        server.close()
