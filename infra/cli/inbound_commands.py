"""`itsm inbound`: the consumer of itsm.inbound."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from infra.cli.process import Commands

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from infra.messaging.dead_letters import DeadLetters
    from infra.settings import Settings


def register(commands: Commands) -> None:
    p = commands.add_parser(
        "inbound",
        help="consume itsm.inbound (CloudEvents: alerts, ticket snapshots)",
        description="Apply CloudEvents from itsm.inbound; rejected ones go to itsm.inbound.dlq. "
        "Run several to scale out: they share one consumer group. Each is a static "
        "member named after its host; give processes on one host their own "
        "ITSM_WORKER_ID.",
    )
    p.add_argument("--batch-size", type=int, help="records per poll (ITSM_INBOUND_BATCH_SIZE)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics (Prometheus text) here (ITSM_INBOUND_METRICS_PORT)",
    )
    p.set_defaults(run=inbound)


def inbound(args: argparse.Namespace) -> int:
    from infra.cli.process import stop_on_signals
    from infra.composition_root import bootstrap
    from infra.messaging.inbound_consumer import consumer_for
    from infra.settings import Settings

    settings = Settings()
    kafka = _kafka(settings)
    container = bootstrap(settings)
    dead_letters = _dead_letters(settings, kafka)
    consumer = consumer_for(container, kafka, dead_letters, args.batch_size)
    port = args.metrics_port or settings.inbound_metrics_port
    _serve_metrics(port, settings.host, consumer.processor.registry)
    try:
        consumer.run(stop_on_signals())
    finally:
        dead_letters.close()
        container.close()
    return 0


def _kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        sys.exit(
            "ITSM_KAFKA_BOOTSTRAP is not set: `itsm inbound` consumes Kafka; without it, "
            "send CloudEvents to POST /v1/inbound"
        )
    return settings.kafka_bootstrap


def _dead_letters(settings: Settings, bootstrap: str) -> DeadLetters:
    """The inbound topic and its dead-letter topic, created if missing; their producer."""
    from infra.messaging.dead_letters import DeadLetters, ensure_with_dead_letters, make_producer

    max_bytes = settings.dead_letter_max_bytes
    ensure_with_dead_letters(
        bootstrap, settings.inbound_topic, settings.kafka_partitions, max_bytes
    )
    return DeadLetters(make_producer(bootstrap, max_bytes))


def _serve_metrics(port: int | None, host: str, registry: CollectorRegistry) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=registry)
