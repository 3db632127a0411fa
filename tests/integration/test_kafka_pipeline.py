"""The Kafka path: relay -> itsm.events -> projection workers -> read models (real broker)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from domain.incident.commands import (
    Acknowledge,
    Assign,
    Comment,
    Hold,
    LogIncident,
    Resolve,
    Resume,
)
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.event_chain import chained
from infra.composition_root import default_projections
from infra.event_store.notification_feed import NotificationFeed
from infra.messaging.dead_letters import DeadLetters
from infra.messaging.dead_letters import make_producer as dl_producer
from infra.messaging.projection_worker import ProjectionWorker
from infra.messaging.relay import Relay, RelayPosition, make_producer
from infra.operations.read_model_rebuild import rebuild
from infra.sql.database import connect
from projections.audit import incident_timeline as timeline
from projections.incident import incident_queue as incidents
from projections.runtime.runner import ProjectionRunner
from tests.counting import incident_events
from tests.waiting import wait_until

CTX = Context(Actor("alice"), "req-1")


def drive(container, count: int = 5) -> list:
    ids = []
    for n in range(count):
        incident = container.desk.create(
            LogIncident(title=f"Printer {n} jammed", caller="bob", impact=2, urgency=2), CTX
        )
        for command in (
            Assign(group="desktop"),
            Acknowledge(),
            Hold(reason="awaiting_caller"),
            Resume(),
            Comment(text="replaced drum"),
            Resolve(code="fixed"),
        ):
            container.desk.execute(incident.id, command, CTX)
        ids.append(incident.id)
    return ids


def relay_all(container) -> Relay:
    relay = Relay(
        container.desk,
        RelayPosition(container.store_db, container.settings.events_topic),
        make_producer(container.settings.kafka_bootstrap),
    )
    while relay.step():
        pass
    return relay


def read_models(container) -> tuple[list, dict]:
    with container.read_db.transaction() as tx:
        _, rows = incidents.search(tx, {}, limit=1000, offset=0)
        lines = {r["id"]: timeline.entries(tx, r["id"]) for r in rows}
    return sorted(rows, key=lambda r: r["number"]), lines


def run_workers(container, until) -> None:
    stop = threading.Event()
    workers = [
        ProjectionWorker(
            container.settings.kafka_bootstrap,
            container.settings.events_topic,
            runner,
            DeadLetters(dl_producer(container.settings.kafka_bootstrap)),
        )
        for runner in container.runners
    ]
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_until(until, timeout=60, what="read models to catch up")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def caught_up(container, expected_events: int):
    def probe():
        rows, lines = read_models(container)
        return (
            sum(len(v) for v in lines.values()) == expected_events
            and sum(r["version"] for r in rows) == expected_events
        )

    return probe


def test_relay_publishes_every_event_in_order_keyed_by_incident_with_headers(container):
    ids = drive(container, 3)
    relay_all(container)
    topic = container.settings.events_topic
    consumer = KafkaConsumer(
        bootstrap_servers=container.settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    records = list(consumer)
    consumer.close()
    # Every stored event: 7 per incident, the default SLA policy's creation, and the incident
    # number sequence's start and one number issued per incident.
    assert len(records) == container.desk.stored_events() == 3 * 7 + 1 + 1 + 3
    for incident_id in ids:
        mine = [r for r in records if r.key == str(incident_id).encode()]
        assert len({r.partition for r in mine}) == 1  # one incident stays in one partition
        assert [orjson.loads(r.value)["aggregate_version"] for r in mine] == list(range(1, 8))
    first = next(r for r in records if r.key == str(ids[0]).encode())
    headers = dict(first.headers)
    value = orjson.loads(first.value)
    assert set(headers) == {
        "event_type",
        "schema_version",
        "aggregate_version",
        "notification_id",
        "event_hash",
    }
    position = int(headers["notification_id"])  # its link in the store's hash chain
    linked = chained(container.store_db, position, position)[position]
    assert headers["event_hash"] == linked.hex().encode()
    assert headers["event_type"].decode() == value["type"]
    assert {
        "event_id",
        "type",
        "aggregate_id",
        "aggregate_version",
        "occurred_at",
        "actor",
        "causation_id",
        "payload",
    } <= set(value)
    # A person who acted is published as their token, which only the store's key opens.
    assert value["actor"]["kind"] == "person" and value["actor"]["id"].startswith("pid:1:")
    assert container.vault.open(value["actor"]["id"]) == "alice"


def test_workers_build_the_same_read_models_as_the_in_process_feed(container, tmp_path):
    drive(container, 4)
    relay_all(container)
    run_workers(container, caught_up(container, incident_events(container.desk)))
    local_db = connect(f"sqlite:///{tmp_path / 'local.db'}")
    runners = [ProjectionRunner(local_db, p) for p in default_projections()]
    for runner in runners:
        runner.setup()
    NotificationFeed(container.desk.recorder, container.desk.publishing_mapper, runners).catch_up()
    assert read_models(SimpleNamespace(read_db=local_db)) == read_models(container)


def test_republished_duplicates_after_a_relay_crash_are_applied_once(container):
    drive(container, 3)
    relay_all(container)
    position = RelayPosition(container.store_db, container.settings.events_topic)
    position.set(1)  # as if the relay died after the broker acked but before saving
    relay_all(container)
    run_workers(container, caught_up(container, incident_events(container.desk)))
    rows, lines = read_models(container)
    assert [len(v) for v in lines.values()] == [7, 7, 7]
    assert all(r["version"] == 7 and r["state"] == "resolved" for r in rows)


def test_an_undecodable_record_is_dead_lettered_and_the_worker_goes_on(container):
    topic = container.settings.events_topic
    producer = KafkaProducer(bootstrap_servers=container.settings.kafka_bootstrap)
    producer.send(topic, key=b"junk", value=b"{not json", partition=0).get(timeout=10)
    producer.close()
    drive(container, 2)
    relay_all(container)
    run_workers(container, caught_up(container, incident_events(container.desk)))
    dlq = KafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=container.settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    dead = [r for r in dlq if r.value == b"{not json"]
    dlq.close()
    assert dead and dict(dead[0].headers)["reason"]


def test_rebuild_replays_one_read_model_from_offset_zero(container):
    drive(container, 3)
    relay_all(container)
    run_workers(container, caught_up(container, incident_events(container.desk)))
    before = read_models(container)
    with container.read_db.transaction() as tx:
        tx.execute("UPDATE rm_incidents SET state = 'tampered'")
    replayed = rebuild(container, "incidents", show_progress=False)
    assert replayed == container.desk.stored_events()
    assert read_models(container) == before
