"""The worker outlives what stops a consumer: failures retried, a stalled client recreated,
a poll that never returns replaced (real broker)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from kafka import KafkaConsumer

from domain.incident.commands import LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap
from infra.messaging.kafka_topics import ensure_topics
from infra.messaging.projection_worker import ProjectionWorker, Supervisor
from infra.messaging.relay import Relay, RelayPosition, make_producer
from infra.messaging.supervised_consumer import ConsumerMetrics
from infra.settings import Settings
from projections.incident import incident_queue as incidents
from tests.waiting import wait_until

CTX = Context(Actor("alice"), "liveness")


@pytest.fixture
def container(tmp_path, kafka_bootstrap, kafka_topic_prefix):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        kafka_partitions=2,
        events_topic=f"{kafka_topic_prefix}.events",
    )
    c = bootstrap(settings)
    ensure_topics(kafka_bootstrap, [settings.events_topic], 2)
    yield c
    c.close()


def publish(container, count: int) -> None:
    for n in range(count):
        container.desk.create(
            LogIncident(title=f"Disk {n} full", caller="ops", impact=2, urgency=2), CTX
        )
    settings = container.settings
    relay = Relay(
        container.desk,
        RelayPosition(container.store_db, settings.events_topic),
        make_producer(settings.kafka_bootstrap),
        settings.relay_batch_size,
    )
    while relay.step():
        pass


def rows(container) -> int:
    with container.read_db.transaction() as tx:
        return incidents.search(tx, {}, limit=1000, offset=0)[0]


class Stalled:
    """A consumer that joined its group and then never fetches again, like a client stuck
    re-joining: every poll comes back empty."""

    def __init__(self, **options) -> None:
        self.real = KafkaConsumer(**options)

    def poll(self, timeout_ms: int = 0):
        self.real.poll(timeout_ms=0)  # keeps its membership, throws the records away
        return {}

    def __getattr__(self, name):
        return getattr(self.real, name)


class Hung(Stalled):
    """A consumer whose poll never returns (until the test ends)."""

    release = threading.Event()

    def poll(self, timeout_ms: int = 0):
        self.release.wait(60)
        return {}


def factory(first):
    made = []

    def make(**options):
        made.append(options)
        return first(**options) if len(made) == 1 else KafkaConsumer(**options)

    return make


def run(worker_or_supervisor, until, timeout: float = 60) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker_or_supervisor.run, args=(stop,))
    thread.start()
    try:
        wait_until(until, timeout=timeout, what="the read model to catch up")
    finally:
        stop.set()
        thread.join(timeout=30)


def restarts(metrics: ConsumerMetrics, projection: str, reason: str) -> float:
    return metrics.restarts.labels(projection, reason)._value.get()


def worker(container, **options) -> ProjectionWorker:
    settings = container.settings
    return ProjectionWorker(
        settings.kafka_bootstrap,
        settings.events_topic,
        container.runner("incidents"),
        worker_id="liveness",
        **options,
    )


def test_a_consumer_that_stops_fetching_while_behind_is_recreated(container):
    publish(container, 20)
    metrics = ConsumerMetrics()
    stuck = worker(container, stall_seconds=2, consumer_factory=factory(Stalled), metrics=metrics)
    run(stuck, lambda: rows(container) == 20)
    assert restarts(metrics, "incidents", "stalled") == 1


def test_an_idle_consumer_with_nothing_to_fetch_is_left_alone(container):
    publish(container, 3)
    metrics = ConsumerMetrics()
    idle = worker(container, stall_seconds=1, metrics=metrics)
    run(idle, lambda: rows(container) == 3)
    stop = threading.Event()
    threading.Timer(4, stop.set).start()
    idle.run(stop)  # caught up: four quiet seconds are not a stall
    assert restarts(metrics, "incidents", "stalled") == 0


def test_a_poll_that_never_returns_is_replaced_by_the_supervisor(container):
    publish(container, 20)
    metrics = ConsumerMetrics()
    make = factory(Hung)
    supervisor = Supervisor(
        {"incidents": lambda: worker(container, consumer_factory=make, metrics=metrics)},
        metrics,
        stuck_seconds=3,
    )
    try:
        run(supervisor, lambda: rows(container) == 20)
    finally:
        Hung.release.set()
    assert restarts(metrics, "incidents", "poll-stuck") == 1


def test_a_database_away_is_retried_until_it_is_back_and_applies_once(container, monkeypatch):
    publish(container, 10)
    runner = container.runner("incidents")
    real, failures = runner.apply_batch, [3]

    def flaky(*args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "apply_batch", flaky)
    metrics = ConsumerMetrics()
    run(worker(container, metrics=metrics), lambda: rows(container) == 10)
    assert metrics.failures.labels("incidents")._value.get() == 3
    with container.read_db.transaction() as tx:
        versions = tx.execute("SELECT version FROM rm_incidents").fetchall()
    assert versions == [(1,)] * 10


def test_the_supervisor_stops_with_status_1_when_a_worker_thread_dies():
    class Dying:
        heartbeat, abandoned = float("inf"), False

        def run(self, stop):
            return  # ended although nobody asked it to stop

    supervisor = Supervisor({"incidents": Dying}, ConsumerMetrics())
    assert supervisor.run(threading.Event(), check_every=0.05) == 1


def test_an_inbound_consumer_that_stops_fetching_while_behind_is_recreated(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    from kafka import KafkaProducer

    from application.inbound.inbound_processor import InboundProcessor
    from infra.messaging.cloudevents import cloudevent, parse
    from infra.messaging.dead_letters import DeadLetters
    from infra.messaging.dead_letters import make_producer as dead_letter_producer
    from infra.messaging.inbound_consumer import InboundConsumer

    topic = f"{kafka_topic_prefix}.inbound"
    settings = Settings(data_dir=tmp_path, inbound_topic=topic)
    container = bootstrap(settings)
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], 1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for n in range(5):
        producer.send(
            topic,
            cloudevent(
                "alert.fired",
                "nagios",
                f"a{n}",
                f"host{n}",
                {"service": f"host{n}", "check": "ping", "severity": "critical", "summary": "down"},
            ),
        )
    producer.flush()
    processor = InboundProcessor(container.desk, parse=parse)
    metrics = ConsumerMetrics()
    consumer = InboundConsumer(
        kafka_bootstrap,
        topic,
        processor,
        DeadLetters(dead_letter_producer(kafka_bootstrap)),
        worker_id="liveness",
        group_id=topic,
        stall_seconds=2,
        consumer_factory=factory(Stalled),
        metrics=metrics,
    )
    try:
        run(consumer, lambda: consumer.applied + consumer.rejected == 5)
        assert consumer.rejected == 0
        assert restarts(metrics, "inbound", "stalled") == 1
    finally:
        container.close()
