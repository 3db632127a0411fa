"""`itsm inbound` against a real broker: applied, dead-lettered, committed, scaled out."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from application.inbound.inbound_processor import InboundProcessor
from domain.inbound.source_ticket import source_ticket_id
from infra.composition_root import bootstrap
from infra.messaging.cloudevents import cloudevent, parse, partition_key
from infra.messaging.dead_letters import DeadLetters, dead_letter_topic, make_producer
from infra.messaging.inbound_consumer import GROUP, InboundConsumer
from infra.messaging.kafka_topics import ensure_topics
from infra.settings import Settings
from tests.unit.test_inbound_source_records import snap
from tests.waiting import wait_until

SOURCE = "servicenow://acme"
PARTITIONS = 3


@pytest.fixture
def container(tmp_path, kafka_bootstrap, kafka_topic_prefix):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        kafka_partitions=PARTITIONS,
        inbound_topic=f"{kafka_topic_prefix}.inbound",
        events_topic=f"{kafka_topic_prefix}.events",
    )
    c = bootstrap(settings)
    ensure_topics(
        kafka_bootstrap,
        [settings.inbound_topic, dead_letter_topic(settings.inbound_topic)],
        PARTITIONS,
    )
    yield c
    c.close()


def send(container, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=container.settings.kafka_bootstrap, acks="all", linger_ms=5
    )
    for key, value in messages:
        producer.send(container.settings.inbound_topic, key=key, value=value)
    producer.flush()
    producer.close()


def snapshot_message(data: dict, id_: str | None = None) -> tuple[bytes, bytes]:
    event = cloudevent(
        "incident.snapshot", SOURCE, id_ or f"{data['ref']}-{data['mod_count']}", data["ref"], data
    )
    return partition_key("incident.snapshot", data), event


def consume(
    container, processor, until, members: int = 1, group: str | None = None, timeout: float = 90
) -> list[InboundConsumer]:
    stop = threading.Event()
    dead = DeadLetters(make_producer(container.settings.kafka_bootstrap))
    group = group or f"{container.settings.inbound_topic}.{GROUP}"
    consumers = [
        InboundConsumer(
            container.settings.kafka_bootstrap,
            container.settings.inbound_topic,
            processor,
            dead,
            worker_id=f"w{n}-{group}",
            group_id=group,
        )
        for n in range(members)
    ]
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in consumers]
    for thread in threads:
        thread.start()
    try:
        wait_until(until, timeout=timeout, what="inbound messages to be applied")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        dead.close()
    return consumers


def ticket(container, ref: str):
    return container.desk.repository.get(source_ticket_id(SOURCE, ref))


def committed(container, group: str) -> int:
    probe = KafkaConsumer(
        bootstrap_servers=container.settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
    )
    topic = container.settings.inbound_topic
    total = sum(probe.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    probe.close()
    return total


def test_applied_dead_lettered_and_committed(container):
    good = [
        snapshot_message(snap(m, "in_progress" if m else "new", ref=f"INC{n}"))
        for n in range(5)
        for m in range(3)
    ]
    bad = [
        (b"INC-bad", b"{not json"),
        (b"INC-x", cloudevent("ticket.deleted", SOURCE, "u1", "INC-x", {})),
        (
            b"INC0",
            cloudevent(
                "incident.snapshot",
                SOURCE,
                "s1",
                "INC0",
                {**snap(9, ref="INC0"), "state": "Active"},
            ),
        ),
    ]
    dup = [good[0]]
    send(container, good[:8] + bad + good[8:] + dup)
    processor = InboundProcessor(container.desk, parse=parse)
    group = f"{container.settings.inbound_topic}.g1"
    consume(
        container,
        processor,
        lambda: committed(container, group) == len(good) + len(bad) + len(dup),
        group=group,
    )
    for n in range(5):
        t = ticket(container, f"INC{n}")
        assert t.mod_count == 2 and t.applied == 3
        assert container.desk.get(__import__("uuid").UUID(t.incident_id)).state == "in_progress"
    dlq = KafkaConsumer(
        dead_letter_topic(container.settings.inbound_topic),
        bootstrap_servers=container.settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    dead = {record.value: record for record in dlq}
    dlq.close()
    assert set(dead) == {value for _, value in bad}  # the original bytes, nothing else
    for key, value in bad:
        record = dead[value]
        headers = dict(record.headers)
        assert record.key == key and headers["reason"] and headers["kind"]
    assert dict(dead[b"{not json"].headers)["kind"] == b"malformed"
    assert (
        processor.registry.get_sample_value(
            "itsm_inbound_messages_total",
            {"type": "incident.snapshot", "status": "duplicate", "effect": ""},
        )
        == 1
    )


def test_a_restarted_consumer_redelivers_nothing_twice(container):
    messages = [
        snapshot_message(snap(m, "in_progress" if m else "new", ref=f"R{n}"))
        for n in range(4)
        for m in range(2)
    ]
    send(container, messages)
    processor = InboundProcessor(container.desk, parse=parse)
    group = f"{container.settings.inbound_topic}.g2"
    consume(container, processor, lambda: committed(container, group) == len(messages), group=group)
    before = container.desk.stored_events()
    # a new group (as if every offset were lost) replays everything: all duplicates
    again = f"{group}.again"
    consume(container, processor, lambda: committed(container, again) == len(messages), group=again)
    assert container.desk.stored_events() == before


def test_members_of_one_group_share_the_partitions(container):
    messages = [
        snapshot_message(snap(m, ["new", "in_progress", "resolved", "closed"][m], ref=f"S{n}"))
        for n in range(30)
        for m in range(4)
    ]
    send(container, messages)
    processor = InboundProcessor(container.desk, parse=parse)
    group = f"{container.settings.inbound_topic}.g3"
    members = consume(
        container,
        processor,
        lambda: committed(container, group) == len(messages),
        members=2,
        group=group,
    )
    assert sum(m.applied for m in members) == len(messages)
    for n in range(30):
        t = ticket(container, f"S{n}")
        assert (t.applied, t.stale) == (4, 0)


def test_throughput_of_the_consumer_on_synthetic_snapshots(container, capsys):
    """Rows/s of one `itsm inbound` member, broker to event store (printed for the record)."""
    tickets, updates = 1000, 6
    states = ["new", "in_progress", "on_hold", "in_progress", "resolved", "closed"]
    messages = [
        snapshot_message(
            snap(
                m,
                states[m],
                ref=f"T{n:05d}",
                assignment_group=f"G{(n + m // 3) % 7}",
                hold_reason="awaiting_caller" if m == 2 else None,
                at=f"2016-03-01T{10 + m:02d}:00:00",
            )
        )
        for n in range(tickets)
        for m in range(updates)
    ]
    send(container, messages)
    processor = InboundProcessor(container.desk, parse=parse)
    group = f"{container.settings.inbound_topic}.bench"
    started = time.perf_counter()
    (member,) = consume(
        container,
        processor,
        lambda: committed(container, group) == len(messages),
        group=group,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\ninbound consumer: {len(messages)} snapshots in {elapsed:.1f}s wall = "
            f"{len(messages) / elapsed:.0f} rows/s; {len(messages) / member.busy_seconds:.0f}"
            f" rows/s while busy; {container.desk.stored_events()} events stored"
        )
    assert member.applied == len(messages)
