"""Replay a ServiceNow audit log end to end through Kafka, and say where the time goes.

    .venv/bin/python bench/servicenow_replay.py [PATH] [--bootstrap HOST:PORT] [--limit N]
        [--partitions 6] [--projection NAME ...] [--keep]

The pipeline runs as it does in production, each stage its own process (the `itsm`
commands), all at once: this process imports the CSV into itsm.inbound; `itsm inbound`
maps it into the event store; `itsm relay` publishes the store to itsm.events; one
`itsm worker --projection NAME` per read model. Starts its own Kafka broker unless
`--bootstrap` is given. Prints rows/s end to end and, per stage, when it finished and the
CPU seconds its process used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_LOG = ROOT.parent / "shared" / "data" / "incident_event_log.csv.gz"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stage:
    name: str
    items: int = 0
    cpu: float = 0.0  # CPU seconds of its process (user + system)
    finished: float | None = None  # seconds since the start of the import


@dataclass
class ReplayResult:
    rows: int
    produced: int
    skipped: dict
    seconds: float
    stages: list[Stage] = field(default_factory=list)
    stored_events: int = 0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        lines = [
            f"{self.rows:,} rows ({self.produced:,} snapshots, skipped {self.skipped})"
            f" -> {self.stored_events:,} stored events;"
            f" end to end {self.seconds:.1f} s = {self.rate:,.0f} rows/s",
            f"{'stage':<24}{'items':>10}{'CPU s':>9}{'items/CPU s':>13}{'done at s':>11}",
        ]
        for s in self.stages:
            rate = f"{s.items / s.cpu:,.0f}" if s.cpu else "-"
            done = f"{s.finished:.1f}" if s.finished is not None else "-"
            lines.append(f"{s.name:<24}{s.items:>10,}{s.cpu:>9.1f}{rate:>13}{done:>11}")
        return "\n".join(lines)


class _Process:
    """One `itsm` command running as a child process, its output in a log file."""

    def __init__(self, stage: Stage, args: list[str], env: dict[str, str], log: Path) -> None:
        self.stage, self.log = stage, log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", *args],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def sample_cpu(self) -> None:
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rpartition(")")[2].split()
            self.stage.cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            pass

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.stage.name} exited with {self.popen.returncode}:\n" + self.tail()
            )

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class _Offsets:
    """Sums over a topic's partitions: end offsets, or a group's committed offsets."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)

    def end(self, topic: str) -> int:
        from kafka import TopicPartition

        partitions = self.consumer.partitions_for_topic(topic) or set()
        return sum(
            self.consumer.end_offsets([TopicPartition(topic, p) for p in partitions]).values()
        )

    def committed(self, group: str, topic: str) -> int:
        offsets = self.admin.list_group_offsets(group).get(group, {})
        return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def replay(
    path: Path | str,
    bootstrap: str,
    data_dir: Path,
    partitions: int = 6,
    limit: int | None = None,
    projections: list[str] | None = None,
    prefix: str | None = None,
    show_progress: bool = True,
    timeout: float = 900.0,
    source_timezone: str | None = None,
):
    """Run the whole pipeline on `path`; returns (ReplayResult, container) once every read
    model has applied every event (the caller closes the container)."""
    from infra.composition_root import bootstrap as build
    from infra.composition_root import default_projections
    from infra.importers.servicenow_import import import_servicenow
    from infra.messaging.dead_letters import dead_letter_topic
    from infra.messaging.inbound_consumer import group_for
    from infra.messaging.kafka_topics import ensure_topics
    from infra.messaging.relay import RelayPosition
    from infra.settings import Settings

    prefix = prefix or f"replay{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "ITSM_DATA_DIR": str(data_dir),
        "ITSM_KAFKA_BOOTSTRAP": bootstrap,
        "ITSM_KAFKA_PARTITIONS": str(partitions),
        "ITSM_EVENTS_TOPIC": f"{prefix}.events",
        "ITSM_INBOUND_TOPIC": f"{prefix}.inbound",
        "ITSM_INBOUND_SOURCE_TIMEZONE": "UTC",
        "PYTHONPATH": str(ROOT),
    }
    settings = Settings(
        data_dir=data_dir,
        kafka_bootstrap=bootstrap,
        kafka_partitions=partitions,
        events_topic=env["ITSM_EVENTS_TOPIC"],
        inbound_topic=env["ITSM_INBOUND_TOPIC"],
        inbound_source_timezone="UTC",
    )
    chosen = [p for p in default_projections() if not projections or p.name in projections]
    container = build(settings, projections=chosen)  # creates every table before the children
    events, inbound = settings.events_topic, settings.inbound_topic
    ensure_topics(
        bootstrap, [inbound, dead_letter_topic(inbound), events, f"{events}.dlq"], partitions
    )
    relay_position = RelayPosition(container.store_db, events)
    consumer_stage, relay_stage = Stage("inbound consumer"), Stage("relay")
    worker_stages = [Stage(f"projection {r.projection.name}") for r in container.runners]
    children: list[_Process] = []
    offsets = _Offsets(bootstrap)
    try:
        children.append(_Process(consumer_stage, ["inbound"], env, data_dir / "inbound.log"))
        children.append(_Process(relay_stage, ["relay"], env, data_dir / "relay.log"))
        for runner, stage in zip(container.runners, worker_stages, strict=True):
            name = runner.projection.name
            children.append(
                _Process(
                    stage, ["worker", "--projection", name], env, data_dir / f"worker-{name}.log"
                )
            )
        started = time.perf_counter()
        import_stage = Stage("import (CSV -> Kafka)")
        stats = import_servicenow(
            path,
            bootstrap,
            topic=inbound,
            limit=limit,
            show_progress=show_progress,
            source_timezone=source_timezone,
        )
        import_stage.items, import_stage.cpu = stats.produced, stats.seconds
        import_stage.finished = time.perf_counter() - started
        deadline = started + timeout

        def wait(probe, what):
            while not probe():
                for child in children:
                    child.check()
                if time.perf_counter() > deadline:
                    raise TimeoutError(
                        f"timed out waiting for {what}; its last lines:\n"
                        + "\n".join(c.tail(10) for c in children)
                    )
                time.sleep(0.1)
            return time.perf_counter() - started

        consumer_stage.items = stats.produced
        consumer_stage.finished = wait(
            lambda: offsets.committed(group_for(inbound), inbound) >= stats.produced,
            "the inbound consumer",
        )
        stored = container.desk.stored_events()
        relay_stage.items = stored
        relay_stage.finished = wait(lambda: relay_position.get() > stored, "the relay")
        published = offsets.end(events)
        for runner, stage in zip(container.runners, worker_stages, strict=True):
            stage.finished = wait(
                lambda r=runner: sum(r.positions(events).values()) >= published,
                f"projection {runner.projection.name}",
            )
            stage.items = published
        seconds = max(s.finished for s in worker_stages) if worker_stages else relay_stage.finished
        for child in children:
            child.sample_cpu()
    finally:
        for child in children:
            child.stop()
        offsets.close()
    result = ReplayResult(
        stats.rows,
        stats.produced,
        dict(stats.skipped),
        seconds,
        [import_stage, consumer_stage, relay_stage, *worker_stages],
        stored,
    )
    return result, container


def main(argv: list[str] | None = None) -> int:
    from bench._common import kafka_broker, scratch_dir

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", default=str(DEFAULT_LOG))
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--projection", action="append", help="only these read models")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = parser.parse_args(argv)
    with (
        kafka_broker(args.bootstrap, partitions=args.partitions) as bootstrap,
        scratch_dir("itsm-replay-", keep=args.keep) as data_dir,
    ):
        result, container = replay(
            args.path, bootstrap, data_dir, args.partitions, args.limit, args.projection
        )
        container.close()
        print(result.report())
        if args.keep:
            print(f"databases kept in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
