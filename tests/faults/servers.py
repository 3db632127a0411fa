"""A Kafka broker and a PostgreSQL server a test may kill and start again at the same address.

Each keeps its data directory and port across restarts, so that clients configured with
the address reconnect to the same cluster with the same data, as after a real crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psycopg

from infra.local_servers import kafka_from_jars as kafka_broker
from infra.local_servers.postgres_cluster import (
    PgServer,
    _run_server_cmd,
    find_pg_bin,
    start_pg,
    stop_pg,
)
from tests.faults.harness import free_port
from tests.fixtures.kafka import REPO_ROOT
from tests.waiting import wait_until


class RestartableBroker:
    def __init__(self, data_dir: Path, partitions: int = 3) -> None:
        self.data_dir, self.partitions = Path(data_dir), partitions
        self.port = free_port()
        self.libs = kafka_broker.fetch_jars(REPO_ROOT / "var" / "kafka-libs")
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start on the same data dir and port; returns the seconds it took to serve."""
        started = time.monotonic()
        broker = kafka_broker.start_broker(
            self.data_dir, port=self.port, libs_dir=self.libs, partitions=self.partitions
        )
        assert broker.bootstrap == self.bootstrap, broker
        self.pid = broker.pid
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the broker's java process: no controlled shutdown, no flushed logs."""
        broker = kafka_broker.running_broker(self.data_dir)
        assert broker is not None, "the broker is not running"
        os.kill(broker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while kafka_broker._alive(broker.pid):
            assert time.monotonic() < deadline, "the broker outlived SIGKILL"
            time.sleep(0.02)

    def stop(self) -> None:
        kafka_broker.stop_broker(self.data_dir)


class RestartablePostgres:
    """Its own server: a data dir under /tmp (pytest's tmp is not reachable by the
    postgres OS user) and a fixed port."""

    def __init__(self, keep_log: Path | None = None) -> None:
        self.keep_log = keep_log  # where the server's log is copied on close
        self.data_dir = Path(tempfile.mkdtemp(prefix="itsm-faults-pg-", dir="/tmp"))
        self.port = free_port()
        self.server: PgServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> float:
        started = time.monotonic()
        fresh = self.server is None
        self.server = start_pg(self.data_dir, self.port)
        assert self.server.port == self.port
        if fresh:
            self._durable_commits()
        return time.monotonic() - started

    def _durable_commits(self) -> None:
        """The throwaway server's `synchronous_commit = off` loses the last commits of a
        crash (`-m immediate` discards the WAL buffers): acknowledged commands would vanish
        for the server's sake, not the application's. A real deployment commits durably."""
        with psycopg.connect(self.server.url, autocommit=True) as connection:
            connection.execute("ALTER SYSTEM SET synchronous_commit = on")
            connection.execute("SELECT pg_reload_conf()")
            wait_until(
                lambda: connection.execute("SHOW synchronous_commit").fetchone()[0] == "on",
                timeout=10,
                what="synchronous_commit = on",
            )

    def stop(self) -> None:
        """A clean (fast) shutdown, as for maintenance."""
        stop_pg(self.data_dir)

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend killed, no checkpoint; the next start
        runs crash recovery."""
        proc = _run_server_cmd(
            [
                str(find_pg_bin() / "pg_ctl"),
                "stop",
                "-w",
                "-m",
                "immediate",
                "-D",
                str(self.data_dir),
            ],
            self.data_dir,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def close(self) -> None:
        try:
            stop_pg(self.data_dir)
        finally:
            if self.keep_log is not None and (self.data_dir / "server.log").exists():
                shutil.copyfile(self.data_dir / "server.log", self.keep_log)
            shutil.rmtree(self.data_dir, ignore_errors=True)
