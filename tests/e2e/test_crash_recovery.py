"""SIGKILL the relay and the worker mid-stream; the read models must come out exactly right."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from domain.incident.commands import (
    Acknowledge,
    Assign,
    Comment,
    Hold,
    LogIncident,
    Reopen,
    Resolve,
    Resume,
)
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap, default_projections
from infra.event_store.notification_feed import NotificationFeed
from infra.messaging.kafka_topics import ensure_topics
from infra.settings import Settings
from infra.sql.database import connect
from projections.audit import incident_timeline as timeline
from projections.incident import incident_queue as incidents
from projections.runtime.runner import ProjectionRunner
from tests.counting import incident_events
from tests.waiting import wait_until

COMMANDS = 2000
SCRIPT = (
    Assign(group="network"),
    Acknowledge(),
    Hold(reason="awaiting_vendor"),
    Resume(),
    Comment(text="swapped the switch"),
    Resolve(code="fixed"),
    Reopen(reason="flapping"),
    Comment(text="firmware upgraded"),
    Resolve(code="fixed"),
)
ROOT = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", self.command],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def snapshot(read_db) -> tuple[list, dict]:
    with read_db.transaction() as tx:
        _, rows = incidents.search(tx, {}, limit=10_000, offset=0)
        lines = {r["id"]: timeline.entries(tx, r["id"]) for r in rows}
    return sorted(rows, key=lambda r: r["number"]), lines


def issue_commands(container, crash_points: dict[int, threading.Event]) -> None:
    ctx, issued, incident = Context(Actor("load"), "crash-test"), 0, None
    while issued < COMMANDS:
        incident = container.desk.create(
            LogIncident(title=f"Link {issued} down", caller="noc", impact=2, urgency=1), ctx
        )
        issued += 1
        for command in SCRIPT[: COMMANDS - issued]:
            container.desk.execute(incident.id, command, ctx)
            issued += 1
            if issued in crash_points:
                crash_points[issued].set()


@pytest.mark.slow
def test_killed_relay_and_worker_lose_nothing_and_apply_nothing_twice(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    topic = f"{kafka_topic_prefix}.events"
    env = {
        **os.environ,
        "ITSM_DATA_DIR": str(tmp_path),
        "ITSM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ITSM_EVENTS_TOPIC": topic,
        "ITSM_KAFKA_PARTITIONS": "3",
        "ITSM_WORKER_ID": "worker-1",
    }
    container = bootstrap(
        Settings(
            data_dir=tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            events_topic=topic,
            kafka_partitions=3,
        )
    )
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], 3)
    relay = Process("relay", env, tmp_path / "relay.log")
    worker = Process("worker", env, tmp_path / "worker.log")
    crash_points = {COMMANDS // 3: threading.Event(), 2 * COMMANDS // 3: threading.Event()}
    writer = threading.Thread(target=issue_commands, args=(container, crash_points))
    relay.start(), worker.start(), writer.start()
    try:
        for point in crash_points.values():
            assert point.wait(timeout=120), "the command stream stalled"
            relay.kill(), worker.kill()
            relay.start(), worker.start()
        writer.join(timeout=300)
        stored = incident_events(container.desk)
        assert stored == COMMANDS

        def caught_up():
            rows, lines = snapshot(container.read_db)
            return (
                sum(len(v) for v in lines.values()) == stored
                and sum(r["version"] for r in rows) == stored
            )

        wait_until(caught_up, timeout=120, interval=0.5, what="the worker to catch up")
    finally:
        relay.stop(), worker.stop()

    reference_db = connect(f"sqlite:///{tmp_path / 'uninterrupted.db'}")
    runners = [ProjectionRunner(reference_db, p) for p in default_projections()]
    for runner in runners:
        runner.setup()
    NotificationFeed(container.desk.recorder, container.desk.publishing_mapper, runners).catch_up()
    rows, lines = snapshot(container.read_db)
    assert (rows, lines) == snapshot(reference_db)
    for row in rows:  # no event missing or applied twice, per incident
        assert [e["version"] for e in lines[row["id"]]] == list(range(1, row["version"] + 1))
    container.close()
