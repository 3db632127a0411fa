"""`itsm audit verify --kafka` against a real broker: the events topic as the relay wrote it
verifies clean, and a copy of it rewritten by an intruder (a record altered, dropped,
inserted, duplicated or moved) is reported with the position, exit status 1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.checkpoints import Checkpointer, generate_key, load_key
from infra.cli.main import main
from infra.composition_root import Container, bootstrap
from infra.messaging.kafka_topics import ensure_topics
from infra.messaging.relay import RelayPosition
from infra.settings import Settings
from tests.integration.test_kafka_pipeline import relay_all

CTX = Context(Actor("alice"), "kafka-tamper-test")


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Published:
    container: Container
    records: list[Record]  # the topic as the relay wrote it, in offset order
    env: dict[str, str]
    bootstrap: str

    def verify(
        self, capsys, monkeypatch, rewrite: Callable[[list[Record]], list[Record]]
    ) -> tuple[int, str]:
        """Verify a copy of the topic rewritten by `rewrite`, as if it were the topic."""
        topic = f"{self.env['ITSM_EVENTS_TOPIC']}.copy"
        ensure_topics(self.bootstrap, [topic], 1)
        producer = KafkaProducer(bootstrap_servers=self.bootstrap)
        for record in rewrite(list(self.records)):
            producer.send(topic, key=record.key, value=record.value, headers=record.headers)
        producer.flush()
        producer.close()
        published = RelayPosition(self.container.store_db, self.env["ITSM_EVENTS_TOPIC"]).get()
        RelayPosition(self.container.store_db, topic).set(published)
        for name, value in {**self.env, "ITSM_EVENTS_TOPIC": topic}.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        status = main(["audit", "verify", "--kafka"])
        return status, capsys.readouterr().out


@pytest.fixture
def published(tmp_path, kafka_bootstrap, kafka_topic_prefix) -> Iterator[Published]:
    env = {
        "ITSM_DATA_DIR": str(tmp_path),
        "ITSM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ITSM_EVENTS_TOPIC": f"{kafka_topic_prefix}.events",
        "ITSM_AUDIT_SIGNING_KEY": str(tmp_path / "audit.pem"),
    }
    settings = Settings(
        data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap, events_topic=env["ITSM_EVENTS_TOPIC"]
    )
    generate_key(tmp_path / "audit.pem")
    container = bootstrap(settings)
    try:
        ensure_topics(kafka_bootstrap, [settings.events_topic], 1)
        for n in range(4):
            incident = container.desk.create(
                LogIncident(title=f"Printer {n}", caller="bob", impact=2, urgency=2), CTX
            )
            container.desk.execute(incident.id, Assign(group="desktop"), CTX)
            container.desk.execute(incident.id, Comment(text="toner"), CTX)
        Checkpointer(container.store_db, load_key(tmp_path / "audit.pem")).take()
        relay_all(container)
        yield Published(
            container, _read(kafka_bootstrap, settings.events_topic), env, kafka_bootstrap
        )
    finally:
        container.close()


def _read(bootstrap: str, topic: str) -> list[Record]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    records: list[Record] = []
    while consumer.position(tp) < end:
        for batch in consumer.poll(timeout_ms=500).values():
            records += [Record(r.key, r.value, list(r.headers)) for r in batch]
    consumer.close()
    return records


def _position(record: Record) -> int:
    return int(dict(record.headers)["notification_id"])


def test_the_topic_as_the_relay_wrote_it_verifies_clean(published, capsys, monkeypatch):
    status, out = published.verify(capsys, monkeypatch, lambda records: records)
    assert status == 0, out
    assert "clean" in out
    assert all(dict(r.headers).get("event_hash") for r in published.records)


def test_an_altered_record_is_found(published, capsys, monkeypatch):
    index = next(i for i, r in enumerate(published.records) if b"desktop" in r.value)

    def alter(records: list[Record]) -> list[Record]:
        r = records[index]
        records[index] = Record(r.key, r.value.replace(b"desktop", b"deskt0p"), r.headers)
        return records

    target = _position(published.records[index])
    status, out = published.verify(capsys, monkeypatch, alter)
    assert status == 1
    assert f"altered: position {target} " in out and "bytes are not the event's" in out


def test_a_record_with_a_forged_hash_is_found(published, capsys, monkeypatch):
    def forge(records: list[Record]) -> list[Record]:
        r = records[3]
        headers = [(k, b"00" * 32 if k == "event_hash" else v) for k, v in r.headers]
        records[3] = Record(r.key, r.value, headers)
        return records

    status, out = published.verify(capsys, monkeypatch, forge)
    assert status == 1
    assert f"altered: position {_position(published.records[3])} " in out


def test_a_dropped_record_is_found(published, capsys, monkeypatch):
    status, out = published.verify(capsys, monkeypatch, lambda records: records[:4] + records[5:])
    assert status == 1
    assert f"deleted: position {_position(published.records[4])} " in out


def test_an_inserted_record_is_found(published, capsys, monkeypatch):
    def insert(records: list[Record]) -> list[Record]:
        r = records[2]
        headers = [(k, b"9999" if k == "notification_id" else v) for k, v in r.headers]
        return [*records[:3], Record(r.key, r.value, headers), *records[3:]]

    status, out = published.verify(capsys, monkeypatch, insert)
    assert status == 1
    assert "inserted: position 9999:" in out
    assert "reordered" not in out


def test_a_duplicated_record_is_found(published, capsys, monkeypatch):
    status, out = published.verify(capsys, monkeypatch, lambda records: [*records, records[6]])
    assert status == 1
    assert f"duplicated: position {_position(published.records[6])} " in out
    assert "identical copies" in out


def test_two_swapped_records_are_found(published, capsys, monkeypatch):
    def swap(records: list[Record]) -> list[Record]:
        records[7], records[8] = records[8], records[7]
        return records

    status, out = published.verify(capsys, monkeypatch, swap)
    assert status == 1
    assert f"reordered: position {_position(published.records[7])}:" in out
