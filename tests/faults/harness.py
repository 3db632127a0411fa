"""What the fault suite shares.

- `Proc`: one real `itsm ...` process (`python -m infra.cli`), its output in a log file.
- `Load`: a thread that works incidents over HTTP and remembers every answer, so that a
  test knows exactly which commands were acknowledged (201/200), refused or unanswered.
- `ReadinessLog`: a thread that asks `/health/ready` every `interval` seconds and keeps
  every answer with the moment it was asked and answered.
- Read models: `dump` reads every table of every read model (and the runner's own
  bookkeeping) of a database; `reference_dump` builds the same read models from the event
  store alone (the in-process `NotificationFeed`, as tests/e2e/test_crash_recovery.py
  does), so that `assert_exactly_once` can compare the two and check each acknowledged
  command against the audit timeline.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from infra.composition_root import bootstrap, default_projections
from infra.event_store.notification_feed import NotificationFeed
from infra.messaging.kafka_topics import ensure_topics
from infra.settings import Settings
from infra.sql.database import connect
from projections.runtime.runner import ProjectionRunner
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECTIONS = tuple(p.name for p in default_projections())
# The read models that take in incidents (the improvement register sees none of them).
INCIDENT_READ_MODELS = tuple(
    p.name
    for p in default_projections()
    if p.aggregate_types is None or "Incident" in p.aggregate_types
)
# Bookkeeping that legitimately differs between two feeds of the same events: the SLA
# scheduler's change counter counts batches (and the KPIs' place in it follows), a
# quarantine records when it happened, and the KPI quantiles are recomputed from their bins
# (which are compared) whenever the idle work runs.
IGNORED_TABLES = {"sla_meta", "kpi_meta", "kpi_ttr_quantiles"}
IGNORED_COLUMNS = {"sla_clocks": {"seq"}, "projection_quarantine": {"quarantined_at"}}
# KPI cells are sums: a feed cut into other batches writes a change that later cancels out
# (a row of zeros) or adds the same floats in another order (a different last digit).
SUMMED = {"kpi_cells", "kpi_state_cells", "kpi_ttr_bins"}
KEYS = {"zone", "grain", "bucket", "dim", "value", "step", "bin"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of the test's processes: this one's, without any ITSM_* setting
    of the caller's shell, plus `settings` (ITSM_ prefixed by the caller)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITSM_")}
    env["ITSM_DATA_DIR"] = str(tmp_path)
    # A consumer stuck without records while behind is recreated well within the tests'
    # waits (production's 60 s is longer than most of them).
    env["ITSM_WORKER_STALL_SECONDS"] = "15"
    env.update(settings)
    return env


def settings_of(env: dict[str, str], **overrides: Any) -> Settings:
    """The Settings the processes run with, for an in-test container on the same store."""
    values = {k.removeprefix("ITSM_").lower(): v for k, v in env.items() if k.startswith("ITSM_")}
    values.update(overrides)
    return Settings(**values)


class Proc:
    """One `itsm` subcommand as a real process."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.popen: subprocess.Popen | None = None
        self._log_from = 0  # where this run's output starts in the log

    def start(self) -> Proc:
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            out.write(f"\n==== {time.strftime('%H:%M:%S')} start {self.args}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye to the group coordinator."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        """Until the process has written `text` to its log; fails at once if it exits."""

        def written():
            assert self.alive(), f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}"
            with open(self.log, "rb") as log:
                log.seek(self._log_from)
                return text.encode() in log.read()

        wait_until(written, timeout=timeout, interval=0.1, what=f"{self.name} to log {text!r}")

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


# What each role logs once its start-up (bootstrap: schema set-up included) is over.
STARTED = {
    "serve": "Application startup complete",
    "relay": "Instantiated an idempotent producer",
    "worker": "IO loop starting (client_id=itsm-worker",
    "inbound": "IO loop starting (client_id=itsm-inbound",
}


@contextmanager
def running(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    """Start the processes at once; stop every one however the block ends."""
    try:
        for proc in procs:
            proc.start()
        yield procs
    except BaseException:
        # What each process logged, for the failure's report (pytest shows captured output).
        for proc in procs:
            print(f"==== {proc.name}'s log, its end:\n{proc.tail()}")
        raise
    finally:
        for proc in procs:
            try:
                proc.stop()
            except Exception:  # stop the others all the same
                pass


def prepare(env: dict[str, str], kafka: str, topic: str) -> tuple[Settings, str]:
    """What an operator does before starting the roles: the schema, an admin key, the
    topics. Returns the settings the processes read and the key."""
    settings = settings_of(env)
    container = bootstrap(settings)
    key = container.keys.create("admin", "faults")
    container.close()
    ensure_topics(kafka, [topic, f"{topic}.dlq"], 3)
    return settings, key


def pipeline(env: dict[str, str], logs: Path) -> tuple[Proc, Proc, Proc]:
    """`itsm serve`, `relay` and `worker`, not started, each logging into `logs`."""
    return tuple(
        Proc(role, [role], env, logs / f"{role}.log")  # type: ignore[return-value]
        for role in ("serve", "relay", "worker")
    )


def wait_started(*procs: Proc, timeout: float = 90) -> None:
    """Until every process has finished starting up; fails if one exits meanwhile."""
    for proc in procs:
        proc.wait_for_log(STARTED[proc.args[0]], timeout=timeout)


def itsm(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an `itsm` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def client(port: int, key: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=timeout,
        headers={"Authorization": f"Bearer {key}"},
    )


def wait_ready(http: httpx.Client, timeout: float = 90, what: str = "the API to be ready") -> dict:
    """Until /health/ready answers 200 with status ok (everything current)."""

    def ok():
        try:
            response = http.get("/health/ready")
        except httpx.TransportError:
            return None
        body = response.json()
        return body if response.status_code == 200 and body.get("status") == "ok" else None

    return wait_until(ok, timeout=timeout, interval=0.2, what=what)


# Load and ReadinessLog threads started by the running test; conftest stops them after it
# whatever happened, so that none polls on into the next test.
_STARTED: list[Any] = []


def stop_started() -> None:
    while _STARTED:
        try:
            _STARTED.pop().stop()
        except BaseException:  # noqa: BLE001 - the test already reported what mattered
            pass


# -- HTTP load ------------------------------------------------------------------------------
SCRIPT = (
    ("assign", {"group": "network", "agent": "erin"}),
    ("acknowledge", {}),
    ("hold", {"reason": "awaiting_vendor"}),
    ("resume", {}),
    ("comment", {"text": "swapped the switch"}),
    ("resolve", {"code": "fixed"}),
    ("reopen", {"reason": "flapping"}),
    ("comment", {"text": "firmware upgraded"}),
    ("resolve", {"code": "fixed"}),
    ("close", {"satisfaction": 4}),
)


@dataclass
class Sent:
    request_id: str
    action: str
    incident_id: str | None
    started: float
    finished: float
    status: int | None  # None: no answer (the connection failed or timed out)
    version: int | None = None
    body: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)


class Load:
    """Works incidents through SCRIPT over HTTP, one command at a time, until stopped.

    An incident whose command was not acknowledged is left where it is and a new one is
    logged, so that no command depends on one whose outcome is unknown."""

    def __init__(
        self, port: int, key: str, tag: str, pause: float = 0.02, timeout: float = 10.0
    ) -> None:
        self.port, self.key, self.tag, self.pause, self.timeout = port, key, tag, pause, timeout
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{tag}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Load:
        self._thread.start()
        _STARTED.append(self)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the load thread did not stop"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            with client(self.port, self.key, self.timeout) as http:
                n = 0
                while not self._stop.is_set():
                    incident = self._send(
                        http,
                        n,
                        "log",
                        None,
                        "/v1/incidents",
                        {"title": f"Link {n} down", "caller": "noc", "impact": 2, "urgency": 1},
                    )
                    n += 1
                    step = 0
                    while incident is not None and step < len(SCRIPT) and not self._stop.is_set():
                        action, body = SCRIPT[step]
                        self._stop.wait(self.pause)
                        incident = self._send(
                            http, n, action, incident, f"/v1/incidents/{incident}/{action}", body
                        )
                        n, step = n + 1, step + 1
                    self._stop.wait(self.pause)
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def _send(
        self, http: httpx.Client, n: int, action: str, incident: str | None, path: str, body: dict
    ) -> str | None:
        request_id = f"{self.tag}-{n}"
        started = time.monotonic()
        try:
            response = http.post(path, json=body, headers={"X-Request-ID": request_id})
        except httpx.TransportError as error:
            self._record(
                Sent(
                    request_id, action, incident, started, time.monotonic(), None, body=repr(error)
                )
            )
            return None
        sent = Sent(
            request_id,
            action,
            incident,
            started,
            time.monotonic(),
            response.status_code,
            body=response.text[:2000],
        )
        if sent.acknowledged:
            answer = response.json()
            sent.incident_id, sent.version = answer["id"], answer["version"]
        self._record(sent)
        return sent.incident_id if sent.acknowledged else None

    def _record(self, sent: Sent) -> None:
        with self._lock:
            self.sent.append(sent)

    def snapshot(self) -> list[Sent]:
        with self._lock:
            return list(self.sent)

    def acknowledged(self) -> list[Sent]:
        return [s for s in self.snapshot() if s.acknowledged]

    def acked_versions(self) -> dict[str, int]:
        """Incident id -> the highest version an acknowledged command reported."""
        versions: dict[str, int] = {}
        for s in self.acknowledged():
            versions[s.incident_id] = max(versions.get(s.incident_id, 0), s.version)
        return versions

    def describe(self, start: float, end: float, origin: float) -> str:
        """The commands sent between two moments, one line each (t relative to origin)."""
        return "\n".join(
            f"  t={s.started - origin:6.1f}s {s.action:11} -> {s.status} in "
            f"{s.finished - s.started:.2f}s {'' if s.acknowledged else s.body[:120]}"
            for s in self.snapshot()
            if start <= s.started <= end
        )

    def wait_acknowledged(self, more: int, timeout: float = 60) -> None:
        """Until `more` further commands were acknowledged."""
        target = len(self.acknowledged()) + more
        wait_until(
            lambda: self.error is not None or len(self.acknowledged()) >= target,
            timeout=timeout,
            interval=0.05,
            what=f"{more} more acknowledged commands",
        )
        if self.error is not None:
            raise self.error


# -- readiness --------------------------------------------------------------------------------
@dataclass
class Ready:
    started: float
    finished: float
    status: int | None  # None: no answer
    body: dict | None
    retry_after: str | None
    content_type: str

    @property
    def verdict(self) -> str | None:
        return self.body.get("status") if self.body else None

    def projections(self) -> dict[str, dict]:
        if not self.body:
            return {}
        found = self.body.get("components", {}).get("projections", {})
        return {k: v for k, v in found.items() if isinstance(v, dict)}

    def component(self, name: str) -> str | None:
        if not self.body:
            return None
        return (self.body.get("components", {}).get(name) or {}).get("status")

    def brief(self) -> str:
        projections = {
            k: (v.get("status"), v.get("lag"), v.get("quarantined"))
            for k, v in self.projections().items()
        }
        return (
            f"{self.status} {self.verdict} in {self.finished - self.started:.1f}s "
            f"failing={self.body.get('failing') if self.body else None} "
            f"projections={projections}"
        )


class ReadinessLog:
    """Asks /health/ready every `interval` seconds, as an orchestrator's probe would."""

    def __init__(self, port: int, interval: float = 1.0, timeout: float = 10.0) -> None:
        self.port, self.interval, self.timeout = port, interval, timeout
        self.samples: list[Ready] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def start(self) -> ReadinessLog:
        self._thread.start()
        _STARTED.append(self)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=self.timeout) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = http.get("/health/ready")
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    sample = Ready(
                        started,
                        time.monotonic(),
                        response.status_code,
                        body,
                        response.headers.get("retry-after"),
                        response.headers.get("content-type", ""),
                    )
                except httpx.TransportError:
                    sample = Ready(started, time.monotonic(), None, None, None, "")
                self.samples.append(sample)
                self._stop.wait(max(self.interval - (time.monotonic() - started), 0.05))

    def between(self, start: float, end: float) -> list[Ready]:
        """The answers to questions asked at or after `start` and answered by `end`."""
        return [s for s in list(self.samples) if s.started >= start and s.finished <= end]

    def describe(self, start: float | None = None, origin: float = 0.0) -> str:
        return "\n".join(
            f"  t={s.started - origin:6.1f}s {s.brief()}"
            for s in self.samples
            if start is None or s.started >= start
        )


# -- Kafka ----------------------------------------------------------------------------------
def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[Any]:
    """The records of every partition of `topic` from the beginning, oldest first per
    partition, once there are at least `count` (waits up to `timeout` seconds)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="faults-reader",
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), timeout=timeout, what=f"topic {topic}"
        )
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[Any] = []

        def enough():
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return len(records) >= count

        wait_until(enough, timeout=timeout, interval=0, what=f"{count} records on {topic}")
        return records
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """Partition -> the offset the consumer group committed."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="faults-admin")
    try:
        found = admin.list_group_offsets({group: None}).get(group, {})
        return {tp.partition: meta.offset for tp, meta in found.items()}
    finally:
        admin.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="faults-reader")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


# -- read models ------------------------------------------------------------------------------
@contextmanager
def raw_connection(url: str) -> Iterator[Any]:
    """A fresh connection each time: never a pooled one that died with its server."""
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            yield connection
        finally:
            connection.close()
    else:
        connection = psycopg.connect(url, connect_timeout=3, autocommit=True)
        try:
            yield connection
        finally:
            connection.close()


def _rows(connection: Any, table: str, where: str = "", params: tuple = ()) -> list[dict]:
    sql = f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "")
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.execute(sql.replace("%s", "?"), params)
    else:
        cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _normal(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row of every read model's tables, and each read model's versions seen and
    quarantine, in a form that compares across SQLite and PostgreSQL."""
    tables: dict[str, list[tuple]] = {}
    with raw_connection(url) as connection:
        for projection in default_projections():
            for table in projection.tables:
                if table in IGNORED_TABLES:
                    continue
                rows = _rows(connection, table)
                if table in SUMMED:
                    rows = _sums(rows)
                tables[table] = _sorted(rows, IGNORED_COLUMNS.get(table, ()))
        for table in ("projection_versions", "projection_quarantine"):
            rows = [r for r in _rows(connection, table) if r["projection"] in PROJECTIONS]
            tables[table] = _sorted(rows, IGNORED_COLUMNS.get(table, ()))
    return tables


def _sums(rows: list[dict]) -> list[dict]:
    """Cells with anything in them, their sums to nine significant digits (a millionth
    is the residue of floats added and taken out again)."""
    kept = []
    for row in rows:
        sums = {
            k: 0.0 if abs(v) < 1e-6 else float(f"{v:.9g}") for k, v in row.items() if k not in KEYS
        }
        if any(sums.values()):
            kept.append({**{k: v for k, v in row.items() if k in KEYS}, **sums})
    return kept


def _sorted(rows: Iterable[dict], ignored: Iterable[str]) -> list[tuple]:
    ignored = set(ignored)
    return sorted(
        (
            tuple(sorted((k, _normal(v)) for k, v in row.items() if k not in ignored))
            for row in rows
        ),
        key=repr,
    )


def versions_seen(url: str) -> dict[str, dict[str, int]]:
    """Read model -> aggregate id -> the highest version it has taken in."""
    seen: dict[str, dict[str, int]] = {name: {} for name in INCIDENT_READ_MODELS}
    with raw_connection(url) as connection:
        for row in _rows(connection, "projection_versions"):
            if row["projection"] in seen:
                seen[row["projection"]][row["aggregate_id"]] = int(row["version"])
    return seen


def current(url: str, acked: dict[str, int]) -> bool:
    """Whether every read model has taken in every acknowledged command of `acked`."""
    try:
        seen = versions_seen(url)
        followed = sla_followed(url)
    except Exception:  # the database is away or busy: not current
        return False
    return followed and all(
        seen[name].get(incident, 0) >= version
        for name in INCIDENT_READ_MODELS
        for incident, version in acked.items()
    )


def sla_followed(url: str) -> bool:
    """Whether the KPIs have counted every verdict the SLA read model has recorded (they
    follow it, docs/architecture.md)."""
    with raw_connection(url) as connection:
        meta = {r["name"]: r["value"] for r in _rows(connection, "sla_meta")}
        kpi = {r["name"]: r["value"] for r in _rows(connection, "kpi_meta")}
    if "seq" not in meta:
        return True
    return kpi.get("sla_follow") == f"{meta['created']}:{meta['seq']}"


def times_until(
    probes: dict[str, Any], since: float, timeout: float, interval: float = 0.1
) -> dict[str, float]:
    """Seconds from `since` until each probe first answered true, polled side by side."""
    found: dict[str, float] = {}

    def all_seen():
        for name, probe in probes.items():
            if name not in found and probe():
                found[name] = time.monotonic() - since
        return len(found) == len(probes)

    wait_until(
        all_seen,
        timeout=timeout,
        interval=interval,
        what=f"{', '.join(sorted(set(probes) - set(found)))}",
    )
    return found


def time_until_current(url: str, acked: dict[str, int], since: float, timeout: float) -> float:
    """Seconds from `since` (a time.monotonic()) until every read model took in `acked`."""
    wait_until(
        lambda: current(url, acked),
        timeout=timeout,
        interval=0.1,
        what="the read models to take in every acknowledged command",
    )
    return time.monotonic() - since


def relay_caught_up(store_url: str, topic: str, last: int) -> bool:
    """Whether the relay has published every stored event up to notification id `last`."""
    try:
        with raw_connection(store_url) as connection:
            rows = _rows(connection, "itsm_relay_positions", "topic = %s", (topic,))
    except Exception:  # the database is away
        return False
    return bool(rows) and int(rows[0]["next_notification_id"]) > last


def stored_head(store_url: str) -> int:
    """The highest notification id in the event store (PostgreSQL: the table whose rows
    have one)."""
    with raw_connection(store_url) as connection:
        table = connection.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name ="
            " 'notification_id' AND table_name LIKE '%%_events'"
        ).fetchone()[0]
        return int(connection.execute(f"SELECT max(notification_id) FROM {table}").fetchone()[0])


def reference_dump(settings: Settings, tmp_path: Path) -> dict[str, list[tuple]]:
    """The read models as one uninterrupted in-process feed builds them from the store."""
    path = tmp_path / f"reference-{time.monotonic_ns()}.db"
    reference_db = connect(f"sqlite:///{path}")
    runners = [ProjectionRunner(reference_db, p) for p in default_projections()]
    for runner in runners:
        runner.setup()
    container = bootstrap(settings.model_copy(update={"kafka_bootstrap": None}))
    try:
        NotificationFeed(
            container.desk.recorder, container.desk.publishing_mapper, runners
        ).catch_up()
    finally:
        container.close()
        reference_db.close()
    return dump(f"sqlite:///{path}")


def converged(read_url: str, reference: dict[str, list[tuple]], within: float = 60.0) -> dict:
    """The read models once they equal the reference, or as they are after `within` s.
    A read model that follows another (the KPIs count the SLA read model's verdicts in their
    idle work, docs/architecture.md) converges within a second or two of the feed's end,
    usually; on a loaded machine one run in several took over ten."""
    deadline = time.monotonic() + within
    actual = dump(read_url)
    while actual != reference and time.monotonic() < deadline:
        time.sleep(0.5)
        actual = dump(read_url)
    return actual


def assert_exactly_once(
    read_url: str,
    settings: Settings,
    tmp_path: Path,
    acknowledged: list[Sent],
    one_event_per_request: bool = True,
) -> None:
    """Every read model equals the one an uninterrupted feed builds from the store; each
    incident's timeline is versions 1..N, once each; every acknowledged command is in it
    once, at the version its answer reported, under its request id; and (where each
    request records one event) no request was recorded twice, acknowledged or not."""
    reference = reference_dump(settings, tmp_path)
    actual = converged(read_url, reference)
    for table in reference:
        missing = [r for r in reference[table] if r not in actual[table]]
        extra = [r for r in actual[table] if r not in reference[table]]
        assert not missing and not extra, (
            f"read model table {table} differs from the reference built from the store: "
            f"{len(missing)} rows missing, {len(extra)} extra; first missing "
            f"{missing[:2]}, first extra {extra[:2]}"
        )
    assert actual == reference
    timeline: dict[str, dict[int, str]] = {}
    for row in map(dict, actual["rm_audit_trail"]):
        if row["aggregate_type"] != "Incident":
            continue
        versions = timeline.setdefault(row["aggregate_id"], {})
        assert row["version"] not in versions
        versions[row["version"]] = row["causation_id"]
    for incident, versions in timeline.items():
        assert sorted(versions) == list(range(1, len(versions) + 1)), (incident, sorted(versions))
    causes = Counter(c for versions in timeline.values() for c in versions.values())
    if one_event_per_request:
        twice = sorted(c for c, n in causes.items() if n > 1)
        assert not twice, f"requests recorded more than once: {twice[:5]}"
    for sent in acknowledged:
        assert timeline.get(sent.incident_id, {}).get(sent.version) == sent.request_id, (
            f"acknowledged {sent.action} {sent.request_id} (incident {sent.incident_id} "
            f"version {sent.version}) is not in the timeline at that version"
        )
        assert causes[sent.request_id] == 1, sent


def stored_causes(settings: Settings) -> set[str]:
    """The causation ids of every event in the store (what was written, acknowledged or not)."""
    container = bootstrap(settings.model_copy(update={"kafka_bootstrap": None}))
    try:
        causes, start = set(), 1
        while batch := container.desk.recorder.select_notifications(start=start, limit=1000):
            for notification in batch:
                if notification.topic.partition(":")[2].startswith("Incident."):
                    event = container.desk.mapper.to_domain_event(notification)
                    causes.add(getattr(event, "causation_id", None))
            start = batch[-1].id + 1
        return causes
    finally:
        container.close()


class Findings:
    """Every property a fault test checks, each checked whatever happened to the others, so
    that one failure does not hide the next: `assert_none` fails with all of them."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    @contextmanager
    def check(self, what: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as error:
            self.failed.append(f"{what}: {str(error)[:3000]}")

    def assert_none(self) -> None:
        assert not self.failed, f"{len(self.failed)} properties failed:\n\n" + "\n\n".join(
            self.failed
        )


@dataclass
class Figures:
    """Recovery figures: printed, and written to a file under the test's tmp dir and to one
    for the whole session."""

    session_file: Path
    lines: list[str] = field(default_factory=list)

    def record(self, tmp_path: Path, name: str, seconds: float, detail: str = "") -> None:
        line = f"RECOVERY {name}: {seconds:.2f} s{(' (' + detail + ')') if detail else ''}"
        print(line, flush=True)
        self.lines.append(line)
        for path in (tmp_path / "recovery.txt", self.session_file):
            with open(path, "a") as out:
                out.write(line + "\n")
