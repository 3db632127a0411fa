"""A real Kafka 4.x broker round-trip with kafka-python.

Admin, idempotent producer, group consumer."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

N_MESSAGES = 100
KEYS = [f"ticket-{i}".encode() for i in range(7)]


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=3,
                    replication_factor=1,
                    topic_configs={"retention.ms": "-1"},
                )
            ]
        )
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    sent = [(KEYS[i % len(KEYS)], str(i).encode()) for i in range(N_MESSAGES)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in sent]
        producer.flush()
        for f in futures:
            f.get(timeout=10)  # surfaces any per-record error
    finally:
        producer.close()
    return sent


def _consume(bootstrap: str, topic: str, group: str) -> tuple[list[tuple[bytes, bytes]], float]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    got: list[tuple[bytes, bytes]] = []
    start = time.monotonic()
    first_batch_after = None
    try:
        while len(got) < N_MESSAGES and time.monotonic() - start < 30:
            for records in consumer.poll(timeout_ms=200).values():
                if first_batch_after is None:
                    first_batch_after = time.monotonic() - start
                got += [(r.key, r.value) for r in records]
        consumer.commit()
    finally:
        consumer.close()
    return got, first_batch_after if first_batch_after is not None else float("inf")


def _by_key(msgs: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for k, v in msgs:
        out.setdefault(k, []).append(v)
    return out


def test_idempotent_keyed_messages_come_back_complete_in_per_key_order_and_group_joins_fast(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}.events"
    _create_topic(kafka_bootstrap, topic)
    sent = _produce(kafka_bootstrap, topic)

    got, first_batch_after = _consume(kafka_bootstrap, topic, f"{kafka_topic_prefix}.g")

    assert len(got) == N_MESSAGES
    assert sorted(got) == sorted(sent)
    assert _by_key(got) == _by_key(sent)  # per-key order survives partitioning
    # Group join + first fetch; with the broker's 3 s default initial rebalance delay this is >3 s.
    assert first_batch_after < 2.0
