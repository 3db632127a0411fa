"""`itsm inbound` and `itsm import servicenow PATH` (issue 4)."""

from __future__ import annotations

import argparse
import sys


# ---- `itsm inbound` ---------------------------------------------------------------------
def register(commands: argparse._SubParsersAction) -> None:
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
    from infra.messaging.dead_letters import (
        DeadLetters,
        dead_letter_topic,
        make_producer,
        topic_configs,
    )
    from infra.messaging.inbound_consumer import consumer_for
    from infra.messaging.kafka_topics import ensure_topics
    from infra.settings import Settings

    settings = Settings()
    if not settings.kafka_bootstrap:
        sys.exit(
            "ITSM_KAFKA_BOOTSTRAP is not set: `itsm inbound` consumes Kafka; without it, "
            "send CloudEvents to POST /v1/inbound"
        )
    container = bootstrap(settings)
    topic = settings.inbound_topic
    dlq = dead_letter_topic(topic)
    ensure_topics(
        settings.kafka_bootstrap,
        [topic, dlq],
        settings.kafka_partitions,
        {dlq: topic_configs(settings.dead_letter_max_bytes)},
    )
    dead_letters = DeadLetters(
        make_producer(settings.kafka_bootstrap, settings.dead_letter_max_bytes)
    )
    options = {"max_records": args.batch_size} if args.batch_size else {}
    consumer = consumer_for(container, dead_letters, **options)
    port = args.metrics_port or settings.inbound_metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=settings.host, registry=consumer.processor.registry)
    try:
        consumer.run(stop_on_signals())
    finally:
        dead_letters.close()
        container.close()
    return 0
