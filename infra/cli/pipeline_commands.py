"""`itsm relay` and `itsm worker`: the event pipeline through Kafka."""

from __future__ import annotations

import argparse

from infra.cli.process import open_container, require_kafka, stop_on_signals
from infra.settings import Settings


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
    from infra.messaging.dead_letters import DeadLetters, make_producer, topic_configs
    from infra.messaging.kafka_topics import ensure_topics
    from infra.messaging.projection_worker import ProjectionWorker, Supervisor
    from infra.messaging.supervised_consumer import ConsumerMetrics

    container = open_container()
    settings = container.settings
    bootstrap = require_kafka(settings)
    topic, dlq = settings.events_topic, f"{settings.events_topic}.dlq"
    ensure_topics(
        bootstrap,
        [topic, dlq],
        settings.kafka_partitions,
        {dlq: topic_configs(settings.dead_letter_max_bytes)},
    )
    runners = (
        [container.runner(n) for n in args.projection] if args.projection else container.runners
    )
    metrics = ConsumerMetrics()
    dead_letters = DeadLetters(make_producer(bootstrap, settings.dead_letter_max_bytes))
    _serve_metrics(args.metrics_port or settings.worker_metrics_port, settings, metrics, runners)

    def maker(runner):
        return lambda: ProjectionWorker(
            bootstrap,
            topic,
            runner,
            dead_letters,
            worker_id=settings.worker_id,
            metrics=metrics,
            stall_seconds=settings.worker_stall_seconds,
        )

    supervisor = Supervisor(
        {r.projection.name: maker(r) for r in runners},
        metrics,
        stuck_seconds=settings.worker_stuck_seconds,
    )
    try:
        return supervisor.run(stop_on_signals())
    finally:
        dead_letters.close()


def _serve_metrics(port: int | None, settings: Settings, metrics, runners) -> None:
    if not port:
        return
    from prometheus_client import Gauge, start_http_server

    def quarantined(runner):
        def count() -> float:
            try:
                return runner.quarantine_count()
            except Exception:  # the read database is away: unknown, not zero
                return float("nan")

        return count

    gauge = Gauge(
        "itsm_projection_quarantined_aggregates",
        "Aggregates a read model could not fold",
        ["projection"],
        registry=metrics.registry,
    )
    for runner in runners:  # read when scraped
        gauge.labels(runner.projection.name).set_function(quarantined(runner))
    start_http_server(port, addr=settings.host, registry=metrics.registry)


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("relay", help="publish stored events to Kafka").set_defaults(run=relay)
    p = commands.add_parser("worker", help="feed the read models from Kafka")
    p.add_argument("--projection", action="append", help="only this read model (repeatable)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics (Prometheus text) here (ITSM_WORKER_METRICS_PORT)",
    )
    p.set_defaults(run=worker)
