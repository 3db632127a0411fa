"""A 2 MiB message on an inbound topic that accepts it: `itsm inbound` refuses it as too large
and dead-letters it (whole, or as a reference when the dead-letter limit is smaller), and
the good messages after it are applied: the consumer never blocks."""

from __future__ import annotations

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from infra.composition_root import bootstrap
from infra.messaging.cloudevents import cloudevent
from infra.messaging.kafka_topics import ensure_topics
from tests.faults.harness import (
    Proc,
    assert_exactly_once,
    base_env,
    client,
    committed_offsets,
    free_port,
    header,
    itsm,
    read_topic,
    running,
    settings_of,
    wait_ready,
    wait_started,
)
from tests.waiting import wait_until

MiB = 1024 * 1024
TOPIC_LIMIT = 4 * MiB  # what the inbound topics accept
SMALL_DEAD_LETTERS = 1 * MiB


def alert(event_id: str, check: str, description: str = "") -> bytes:
    return cloudevent(
        "alert.fired",
        "prometheus://faults",
        event_id,
        f"web/{check}",
        {
            "service": "web",
            "check": check,
            "summary": f"{check} failing",
            "severity": "minor",
            "description": description,
        },
    )


def create_inbound_topic(bootstrap_servers: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="faults-admin")
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    1,
                    1,
                    topic_configs={"max.message.bytes": str(TOPIC_LIMIT), "retention.ms": "-1"},
                )
            ]
        )
    finally:
        admin.close()


@pytest.mark.slow
def test_an_oversize_inbound_message_is_dead_lettered_and_later_ones_are_applied(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    port, events = free_port(), f"{kafka_topic_prefix}.events"
    whole, referenced = f"{kafka_topic_prefix}.inbound", f"{kafka_topic_prefix}.inbound-small"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=events,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-oversize",
    )
    settings = settings_of(env)
    container = bootstrap(settings)
    key = container.keys.create("admin", "faults")
    container.close()
    ensure_topics(kafka_bootstrap, [events, f"{events}.dlq"], 3)
    for topic in (whole, referenced):
        create_inbound_topic(kafka_bootstrap, topic)
    big = {topic: alert(f"{topic}-big", "huge", "x" * (2 * MiB)) for topic in (whole, referenced)}
    assert all(2 * MiB < len(v) < TOPIC_LIMIT - 64 * 1024 for v in big.values())
    procs = [
        Proc(name, [name], env, tmp_path / f"{name}.log") for name in ("serve", "relay", "worker")
    ]
    # One `itsm inbound` per topic: the default dead-letter limit (16 MiB), and 1 MiB.
    procs.append(
        Proc(
            "inbound-whole",
            ["inbound"],
            {**env, "ITSM_INBOUND_TOPIC": whole},
            tmp_path / "inbound-whole.log",
        )
    )
    procs.append(
        Proc(
            "inbound-small",
            ["inbound"],
            {
                **env,
                "ITSM_INBOUND_TOPIC": referenced,
                "ITSM_DEAD_LETTER_MAX_BYTES": str(SMALL_DEAD_LETTERS),
            },
            tmp_path / "inbound-small.log",
        )
    )
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=TOPIC_LIMIT
    )
    try:
        with running(*procs), client(port, key) as http:
            wait_started(*procs)
            wait_ready(http)
            for topic in (whole, referenced):
                for value in (
                    alert(f"{topic}-1", f"{topic}-before"),
                    big[topic],
                    alert(f"{topic}-2", f"{topic}-after"),
                ):
                    producer.send(topic, key=b"web", value=value).get(timeout=30)
            dead = {
                topic: read_topic(kafka_bootstrap, f"{topic}.dlq", 1, timeout=60)
                for topic in (whole, referenced)
            }
            for topic in (whole, referenced):
                wait_until(
                    lambda topic=topic: committed_offsets(kafka_bootstrap, topic).get(0) == 3,
                    timeout=60,
                    what=f"{topic}'s group offset past the large message",
                )

            def applied():
                page = http.get("/v1/incidents", params={"limit": 50}).json()
                return page["total"] == 4 and page["items"]

            rows = wait_until(applied, timeout=60, what="the good messages in the read model")
            final = wait_ready(http, timeout=60)
            # While the processes run: a read model that follows another may still be at it.
            assert_exactly_once(settings.read_url, settings, tmp_path, [])
            assert all(p.alive() for p in procs), [p.tail() for p in procs if not p.alive()]
    finally:
        producer.close()

    assert sorted(r["external_ref"] for r in rows) == sorted(
        f"web/{topic}-{when}" for topic in (whole, referenced) for when in ("before", "after")
    )
    # The whole message, bytes as sent, with its reason.
    [record] = dead[whole]
    assert record.value == big[whole]
    assert header(record, "kind") == "too-large" and header(record, "reason"), record.headers
    assert header(record, "reference") is None
    # Past the dead-letter limit: a reference to the original, which Kafka keeps.
    [record] = dead[referenced]
    assert len(record.value) < SMALL_DEAD_LETTERS
    assert header(record, "reference") == "true", record.headers
    assert header(record, "kind") == "too-large" and header(record, "reason"), record.headers
    body = orjson.loads(record.value)
    assert body["reference"] == {
        "topic": referenced,
        "partition": 0,
        "offset": 1,
        "size": len(big[referenced]),
    }, body
    # Nothing in the read models for the refused messages; the good ones exactly once.
    assert final["status"] == "ok"
    assert itsm(["projections", "failures"], env).returncode == 0
