"""Replay a ServiceNow audit log end to end through Kafka, and say where the time goes.

    .venv/bin/python bench/servicenow_replay.py [PATH] [--bootstrap HOST:PORT] [--limit N]
        [--partitions 6] [--projection NAME ...] [--keep]

Pipeline, all running at once as in production (threads of this process):
CSV -> importer -> itsm.inbound -> inbound consumer (mapper -> event store) -> relay ->
itsm.events -> one projection worker per read model. Starts its own Kafka broker unless
`--bootstrap` is given. Prints rows/s end to end and, per stage, when it finished and how
long it was busy (time inside its own work, excluding polls that returned nothing).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_LOG = ROOT.parent / "shared" / "data" / "incident_event_log.csv.gz"


@dataclass
class Stage:
    name: str
    items: int = 0
    busy: float = 0.0
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
        lines = [f"{self.rows:,} rows ({self.produced:,} snapshots, skipped {self.skipped})"
                 f" -> {self.stored_events:,} stored events;"
                 f" end to end {self.seconds:.1f} s = {self.rate:,.0f} rows/s",
                 f"{'stage':<24}{'items':>10}{'busy s':>9}{'items/busy s':>14}{'done at s':>11}"]
        for s in self.stages:
            rate = f"{s.items / s.busy:,.0f}" if s.busy else "-"
            done = f"{s.finished:.1f}" if s.finished is not None else "-"
            lines.append(f"{s.name:<24}{s.items:>10,}{s.busy:>9.1f}{rate:>14}{done:>11}")
        return "\n".join(lines)


def _timed(obj, method: str, stage: Stage, count=lambda result: result or 0) -> None:
    """Wrap obj.method to add its wall time (when it did something) to stage.busy."""
    original = getattr(obj, method)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = original(*args, **kwargs)
        done = count(result)
        if done:
            stage.busy += time.perf_counter() - started
            stage.items += done
        return result

    setattr(obj, method, wrapper)


def _end_offsets(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def replay(path: Path | str, bootstrap: str, data_dir: Path, partitions: int = 6,
           limit: int | None = None, projections: list[str] | None = None,
           prefix: str | None = None, show_progress: bool = True, timeout: float = 900.0,
           source_timezone: str | None = None):
    """Run the whole pipeline on `path`; returns (ReplayResult, container) once every read
    model has applied every event (the caller closes the container)."""
    from infra.bootstrap import bootstrap as build, default_projections
    from infra.inbound.consumer import consumer_for, dead_letter_topic
    from infra.kafka_worker import ProjectionWorker
    from infra.relay import Relay, RelayPosition, make_producer
    from infra.servicenow_import import import_servicenow
    from infra.settings import Settings
    from infra.topics import ensure_topics

    prefix = prefix or f"replay{uuid.uuid4().hex[:6]}"
    settings = Settings(data_dir=data_dir, kafka_bootstrap=bootstrap, kafka_partitions=partitions,
                        events_topic=f"{prefix}.events", inbound_topic=f"{prefix}.inbound",
                        inbound_source_timezone="UTC")
    chosen = [p for p in default_projections() if not projections or p.name in projections]
    container = build(settings, projections=chosen)
    events, inbound = settings.events_topic, settings.inbound_topic
    ensure_topics(bootstrap, [inbound, dead_letter_topic(inbound), events, f"{events}.dlq"],
                  partitions)
    stop = threading.Event()
    dead_letters = make_producer(bootstrap)
    consumer = consumer_for(container, dead_letters)
    consumer_stage = Stage("inbound consumer")
    _timed(consumer, "step", consumer_stage)
    relay = Relay(container.desk, RelayPosition(container.store_db, events),
                  make_producer(bootstrap), settings.relay_batch_size * 4)
    relay_stage = Stage("relay")
    _timed(relay, "step", relay_stage)
    workers, worker_stages = [], []
    for runner in container.runners:
        stage = Stage(f"projection {runner.projection.name}")
        _timed(runner, "apply_batch", stage,
               count=lambda result, r=runner: 1)  # busy time only; items from positions
        workers.append(ProjectionWorker(bootstrap, events, runner, dead_letters,
                                        max_records=2000))
        worker_stages.append(stage)
    threads = [threading.Thread(target=consumer.run, args=(stop,), name="inbound"),
               threading.Thread(target=relay.run, args=(stop, 0.02), name="relay"),
               *(threading.Thread(target=w.run, args=(stop,), name=f"worker-{i}")
                 for i, w in enumerate(workers))]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    import_stage = Stage("import (CSV -> Kafka)")
    try:
        stats = import_servicenow(path, bootstrap, topic=inbound, limit=limit,
                                  show_progress=show_progress, source_timezone=source_timezone)
        import_stage.items, import_stage.busy = stats.produced, stats.seconds
        import_stage.finished = time.perf_counter() - started
        deadline = started + timeout

        def wait(probe, what):
            while not probe():
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"timed out waiting for {what}")
                time.sleep(0.05)
            return time.perf_counter() - started

        consumer_stage.finished = wait(
            lambda: consumer.applied + consumer.rejected >= stats.produced, "the inbound consumer")
        stored = container.desk.stored_events()
        relay_stage.finished = wait(lambda: relay.published >= stored, "the relay")
        published = _end_offsets(bootstrap, events)
        for runner, stage in zip(container.runners, worker_stages):
            stage.finished = wait(lambda r=runner: sum(r.positions(events).values()) >= published,
                                  f"projection {runner.projection.name}")
            stage.items = published
        seconds = max(s.finished for s in worker_stages) if worker_stages else \
            relay_stage.finished
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        dead_letters.close()
        relay.producer.close()
    result = ReplayResult(stats.rows, stats.produced, dict(stats.skipped), seconds,
                          [import_stage, consumer_stage, relay_stage, *worker_stages], stored)
    return result, container


def main(argv: list[str] | None = None) -> int:
    from bench._common import kafka_broker, scratch_dir

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default=str(DEFAULT_LOG))
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--projection", action="append", help="only these read models")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = parser.parse_args(argv)
    with kafka_broker(args.bootstrap, partitions=args.partitions) as bootstrap, \
            scratch_dir("itsm-replay-", keep=args.keep) as data_dir:
        result, container = replay(args.path, bootstrap, data_dir, args.partitions, args.limit,
                                   args.projection)
        container.close()
        print(result.report())
        if args.keep:
            print(f"databases kept in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
