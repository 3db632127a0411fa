"""`itsm relay` and `itsm worker`: the event pipeline through Kafka."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from infra.cli.process import Commands, open_container, require_kafka, stop_on_signals
from infra.settings import Settings

if TYPE_CHECKING:
    from infra.composition_root import Container
    from infra.messaging.dead_letters import DeadLetters
    from infra.messaging.projection_worker import ProjectionWorker
    from infra.messaging.supervised_consumer import ConsumerMetrics
    from projections.runtime.runner import ProjectionRunner


def relay(args: argparse.Namespace) -> int:
    from infra.messaging.kafka_topics import ensure_topics
    from infra.messaging.relay import Relay, RelayPosition, make_producer

    container = open_container()
    settings = container.settings
    bootstrap = require_kafka(settings)
    ensure_topics(bootstrap, [settings.events_topic], settings.kafka_partitions)
    position = RelayPosition(container.store_db, settings.events_topic)
    Relay(container.desk, position, make_producer(bootstrap), settings.relay_batch_size).run(
        stop_on_signals(), settings.poll_interval
    )
    return 0


def worker(args: argparse.Namespace) -> int:
    from infra.messaging.dead_letters import DeadLetters, ensure_with_dead_letters, make_producer
    from infra.messaging.projection_worker import Supervisor
    from infra.messaging.supervised_consumer import ConsumerMetrics

    container = open_container()
    settings = container.settings
    bootstrap = require_kafka(settings)
    max_bytes = settings.dead_letter_max_bytes
    ensure_with_dead_letters(bootstrap, settings.events_topic, settings.kafka_partitions, max_bytes)
    runners = _selected(container, args.projection)
    metrics = ConsumerMetrics()
    dead_letters = DeadLetters(make_producer(bootstrap, max_bytes))
    _serve_metrics(args.metrics_port or settings.worker_metrics_port, settings, metrics, runners)
    workers = _workers(settings, bootstrap, runners, dead_letters, metrics)
    supervisor = Supervisor(workers, metrics, stuck_seconds=settings.worker_stuck_seconds)
    try:
        return supervisor.run(stop_on_signals())
    finally:
        dead_letters.close()


def _selected(container: Container, names: list[str] | None) -> list[ProjectionRunner]:
    """The read models named (`--projection`), or all of them."""
    return [container.runner(name) for name in names] if names else container.runners


def _workers(
    settings: Settings,
    bootstrap: str,
    runners: list[ProjectionRunner],
    dead_letters: DeadLetters,
    metrics: ConsumerMetrics,
) -> dict[str, Callable[[], ProjectionWorker]]:
    """How to make (and remake) each read model's worker."""
    from infra.messaging.projection_worker import ProjectionWorker

    make = partial(
        ProjectionWorker,
        bootstrap,
        settings.events_topic,
        dead_letters=dead_letters,
        worker_id=settings.worker_id,
        metrics=metrics,
        stall_seconds=settings.worker_stall_seconds,
    )
    return {runner.projection.name: partial(make, runner=runner) for runner in runners}


def _serve_metrics(
    port: int | None, settings: Settings, metrics: ConsumerMetrics, runners: list[ProjectionRunner]
) -> None:
    if not port:
        return
    from prometheus_client import Gauge, start_http_server

    gauge = Gauge(
        "itsm_projection_quarantined_aggregates",
        "Aggregates a read model could not fold",
        ["projection"],
        registry=metrics.registry,
    )
    for runner in runners:  # read when scraped
        gauge.labels(runner.projection.name).set_function(_quarantined(runner))
    start_http_server(port, addr=settings.host, registry=metrics.registry)


def _quarantined(runner: ProjectionRunner) -> Callable[[], float]:
    def count() -> float:
        try:
            return runner.quarantine_count()
        except Exception:  # the read database is away: unknown, not zero
            return float("nan")

    return count


def register(commands: Commands) -> None:
    commands.add_parser("relay", help="publish stored events to Kafka").set_defaults(run=relay)
    p = commands.add_parser("worker", help="feed the read models from Kafka")
    p.add_argument("--projection", action="append", help="only this read model (repeatable)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics (Prometheus text) here (ITSM_WORKER_METRICS_PORT)",
    )
    p.set_defaults(run=worker)
