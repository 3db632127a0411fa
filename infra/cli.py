"""The `itsm` command: serve, relay, worker, keys, projections, kafka."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from infra import cli_inbound, cli_sla
from infra.settings import Settings


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _container():
    from infra.bootstrap import bootstrap

    return bootstrap(Settings())


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    workers = args.workers or settings.api_workers
    if workers > 1 and not settings.kafka_bootstrap:
        sys.exit("one API process only without Kafka: `itsm serve` then feeds the read models "
                 "and runs the SLA scheduler in-process, which must happen once. Set "
                 "ITSM_KAFKA_BOOTSTRAP (and run `itsm relay`, `itsm worker`, `itsm sla "
                 "scheduler`) to run several.")
    # Per-request access lines cost a lock and a write on the hot path; /metrics and the
    # X-Request-ID on every event already tell what happened.
    uvicorn.run("api.app:create_app", factory=True, host=args.host or settings.host,
                port=args.port or settings.port, workers=workers, log_level="info",
                access_log=settings.access_log)
    return 0


def _require_kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        sys.exit("ITSM_KAFKA_BOOTSTRAP is not set: without Kafka, `itsm serve` feeds the "
                 "read models in-process and no relay or worker is needed")
    return settings.kafka_bootstrap


def relay(args: argparse.Namespace) -> int:
    from infra.relay import Relay, RelayPosition, make_producer
    from infra.topics import ensure_topics

    container = _container()
    settings = container.settings
    bootstrap = _require_kafka(settings)
    ensure_topics(bootstrap, [settings.events_topic], settings.kafka_partitions)
    position = RelayPosition(container.store_db, settings.events_topic)
    Relay(container.desk, position, make_producer(bootstrap), settings.relay_batch_size).run(
        _stop_on_signals(), settings.poll_interval)
    return 0


def worker(args: argparse.Namespace) -> int:
    from infra.dead_letters import DeadLetters, make_producer, topic_configs
    from infra.kafka_worker import ProjectionWorker, Supervisor
    from infra.supervised_consumer import ConsumerMetrics
    from infra.topics import ensure_topics

    container = _container()
    settings = container.settings
    bootstrap = _require_kafka(settings)
    topic, dlq = settings.events_topic, f"{settings.events_topic}.dlq"
    ensure_topics(bootstrap, [topic, dlq], settings.kafka_partitions,
                  {dlq: topic_configs(settings.dead_letter_max_bytes)})
    runners = [container.runner(n) for n in args.projection] if args.projection \
        else container.runners
    metrics = ConsumerMetrics()
    dead_letters = DeadLetters(make_producer(bootstrap, settings.dead_letter_max_bytes))
    _serve_metrics(args.metrics_port or settings.worker_metrics_port, settings, metrics, runners)

    def maker(runner):
        return lambda: ProjectionWorker(bootstrap, topic, runner, dead_letters,
                                        worker_id=settings.worker_id, metrics=metrics,
                                        stall_seconds=settings.worker_stall_seconds)

    supervisor = Supervisor({r.projection.name: maker(r) for r in runners}, metrics,
                            stuck_seconds=settings.worker_stuck_seconds)
    try:
        return supervisor.run(_stop_on_signals())
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

    gauge = Gauge("itsm_projection_quarantined_aggregates", "Aggregates a read model could "
                  "not fold", ["projection"], registry=metrics.registry)
    for runner in runners:  # read when scraped
        gauge.labels(runner.projection.name).set_function(quarantined(runner))
    start_http_server(port, addr=settings.host, registry=metrics.registry)


def keys_create(args: argparse.Namespace) -> int:
    key = _container().keys.create(args.role, args.name)
    print(key)
    print(f"API key for {args.name!r} with role {args.role}; it is shown only once.",
          file=sys.stderr)
    return 0


def projections_rebuild(args: argparse.Namespace) -> int:
    from infra.rebuild import rebuild

    replayed = rebuild(_container(), args.name)
    print(f"rebuilt {args.name} from {replayed} events", file=sys.stderr)
    return 0


def projections_failures(args: argparse.Namespace) -> int:
    container = _container()
    runners = [container.runner(args.name)] if args.name else container.runners
    found = [q for runner in runners for q in runner.quarantined()]
    for q in found:
        print(f"{q.projection}\t{q.aggregate_id}\tversion {q.version}\t{q.event_type}\t"
              f"{q.quarantined_at}\t{q.waiting} waiting\t{q.error}")
    print(f"{len(found)} quarantined aggregate(s)", file=sys.stderr)
    return 1 if found else 0


def projections_retry(args: argparse.Namespace) -> int:
    container = _container()
    runners = [container.runner(args.name)] if args.name else container.runners
    still = 0
    for runner in runners:
        released, failing = runner.retry(args.aggregate)
        still += failing
        print(f"{runner.projection.name}: {released} released, {failing} still quarantined",
              file=sys.stderr)
    return 1 if still else 0


def kafka_up(args: argparse.Namespace) -> int:
    from infra import kafka_broker

    libs = kafka_broker.fetch_jars(kafka_broker.default_libs_dir())
    broker = kafka_broker.start_broker(Path(args.data_dir), port=args.port, libs_dir=libs,
                                       partitions=Settings().kafka_partitions)
    print(broker.bootstrap)
    return 0


def kafka_down(args: argparse.Namespace) -> int:
    from infra import kafka_broker

    kafka_broker.stop_broker(Path(args.data_dir))
    return 0


def parser() -> argparse.ArgumentParser:
    from application.access import Role

    root = argparse.ArgumentParser(prog="itsm", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--host"), p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int,
                   help="API processes sharing the port (ITSM_API_WORKERS; needs Kafka if > 1)")
    p.set_defaults(run=serve)
    commands.add_parser("relay", help="publish stored events to Kafka").set_defaults(run=relay)
    p = commands.add_parser("worker", help="feed the read models from Kafka")
    p.add_argument("--projection", action="append", help="only this read model (repeatable)")
    p.add_argument("--metrics-port", type=int,
                   help="serve /metrics (Prometheus text) here (ITSM_WORKER_METRICS_PORT)")
    p.set_defaults(run=worker)
    keys = commands.add_parser("keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create an API key; prints it once")
    p.add_argument("--role", required=True, choices=[str(r) for r in Role])
    p.add_argument("--name", required=True)
    p.set_defaults(run=keys_create)
    projections = commands.add_parser("projections").add_subparsers(dest="projections_command",
                                                                    required=True)
    p = projections.add_parser("rebuild", help="empty one read model and replay it")
    p.add_argument("name")
    p.set_defaults(run=projections_rebuild)
    p = projections.add_parser("failures", help="list quarantined aggregates (exit 1 if any)")
    p.add_argument("name", nargs="?", help="only this read model")
    p.set_defaults(run=projections_failures)
    p = projections.add_parser("retry", help="fold quarantined events again after a fix")
    p.add_argument("name", nargs="?", help="only this read model")
    p.add_argument("--aggregate", help="only this aggregate id")
    p.set_defaults(run=projections_retry)
    kafka = commands.add_parser("kafka").add_subparsers(dest="kafka_command", required=True)
    default_dir = str(Settings().data_dir / "kafka")
    p = kafka.add_parser("up", help="run a local single-node Kafka (KRaft); prints its address")
    p.add_argument("--data-dir", default=default_dir), p.add_argument("--port", type=int)
    p.set_defaults(run=kafka_up)
    p = kafka.add_parser("down", help="stop the local Kafka")
    p.add_argument("--data-dir", default=default_dir)
    p.set_defaults(run=kafka_down)
    for module in (cli_sla, cli_inbound):  # each adds its own subcommands
        module.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
