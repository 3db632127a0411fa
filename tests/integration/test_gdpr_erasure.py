"""Erasure by crypto-shredding, end to end on a real broker: a caller with three incidents
is erased; then no clear text of theirs is in the event store, the read models, the API,
an audit export, or a fresh read database replayed from Kafka offset 0, while the KPIs and
SLA figures are what they were and the history still verifies (docs/privacy.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import Role
from domain.incident.commands import Acknowledge, Assign, Comment, LogIncident, Resolve
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.checkpoints import Checkpointer
from infra.audit.export import write_bundle
from infra.audit.kafka_verification import KafkaVerification, topic_records
from infra.audit.proof import verify_bundle
from infra.audit.store_verification import StoreVerification
from infra.composition_root import Container, bootstrap
from infra.event_store.publishing import to_envelope
from infra.messaging.kafka_topics import ensure_topics
from infra.messaging.relay import RelayPosition
from infra.operations.read_model_rebuild import rebuild
from infra.settings import Settings
from tests.integration.test_kafka_pipeline import relay_all

KEY = Ed25519PrivateKey.generate()
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
# Everything that is Dana's: her name, and the free text of her incidents.
DANAS = [
    "Dana Scully",
    "Dana's laptop will not boot",
    "BitLocker asks Dana for a key",
    "Dana called back twice",
    "reimaged Dana's disk",
]


def _settings(
    data_dir: Path, bootstrap_servers: str, topic: str, read_dir: Path | None = None
) -> Settings:
    read = f"sqlite:///{(read_dir or data_dir) / 'readmodels.db'}"
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap=bootstrap_servers,
        events_topic=topic,
        kafka_partitions=1,
        read_database_url=read,
    )


def _incident(container: Container, caller: str, title: str, day: int, comment: str) -> str:
    at = START + timedelta(days=day)

    def ctx(hours: int) -> Context:
        moment = at + timedelta(hours=hours)
        return Context(Actor("erin"), f"req-{day}-{hours}-{caller[:1]}", occurred_at=moment)

    desk = container.desk
    incident = desk.create(
        LogIncident(
            title=title,
            description=f"{title}: {caller} says so",
            caller=caller,
            impact=2,
            urgency=2,
        ),
        ctx(0),
    )
    desk.execute(incident.id, Assign(group="desk", agent="erin"), ctx(1))
    desk.execute(incident.id, Acknowledge(), ctx(1))
    desk.execute(incident.id, Comment(text=comment), ctx(2))
    desk.execute(incident.id, Resolve(code="fixed", notes=f"{comment}; done"), ctx(day + 3))
    return str(incident.id)


@pytest.fixture
def world(tmp_path, kafka_bootstrap, kafka_topic_prefix) -> Iterator[dict]:
    topic = f"{kafka_topic_prefix}.events"
    ensure_topics(kafka_bootstrap, [topic], 1)
    container = bootstrap(_settings(tmp_path, kafka_bootstrap, topic))
    try:
        danas = [
            _incident(container, "Dana Scully", DANAS[1], 0, DANAS[3]),
            _incident(container, "Dana Scully", DANAS[2], 1, DANAS[4]),
            _incident(container, "dana  scully", "Printer offline", 2, "toner"),  # same person
        ]
        others = [_incident(container, "Fox Mulder", f"VPN drops {n}", n, "MTU") for n in range(3)]
        relay_all(container)
        for runner in container.runners:
            rebuild(container, runner.projection.name, show_progress=False)
        Checkpointer(container.store_db, KEY).take()
        yield {
            "container": container,
            "danas": danas,
            "others": others,
            "dir": tmp_path,
            "topic": topic,
        }
    finally:
        container.close()


def _client(container: Container) -> tuple[TestClient, dict[str, str]]:
    client = TestClient(create_app(container))
    admin = container.keys.create(Role.ADMIN, f"admin-{id(client)}")
    return client, {"Authorization": f"Bearer {admin}"}


def _figures(client: TestClient, headers: dict[str, str]) -> dict:
    kpis = client.get("/v1/kpis?period=month&group_by=group", headers=headers).json()
    sla = client.get(
        "/v1/sla/compliance?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z&by=group",
        headers=headers,
    ).json()
    return {"kpis": kpis["rows"], "sla": sla}


def _clear_text_in(path: Path) -> list[str]:
    """Dana's strings found in a database's files (the WAL included)."""
    found = []
    for file in path.parent.glob(path.name + "*"):
        data = file.read_bytes()
        found += [f"{file.name}: {s}" for s in [*DANAS, "Dana"] if s.encode() in data]
    return found


def test_an_erased_caller_is_gone_everywhere_and_the_figures_and_proof_stay(world, tmp_path):
    container, danas = world["container"], world["danas"]
    client, admin = _client(container)
    before = _figures(client, admin)
    assert sum(row["resolved"] for row in before["kpis"]) == 6 and before["sla"]
    shown = client.get(f"/v1/incidents/{danas[0]}", headers=admin).json()
    assert shown["caller"] == "Dana Scully" and shown["title"] == DANAS[1]  # opened at the edge

    # Nothing behind the API holds her name in clear, even before the erasure.
    assert _clear_text_in(world["dir"] / "events.db") == []
    assert _clear_text_in(world["dir"] / "readmodels.db") == []

    response = client.post(
        "/v1/privacy/erasures",
        json={
            "caller": "Dana Scully",
            "reason": "asked by letter",
            "legal_basis": "consent_withdrawn",
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert sorted(response.json()["aggregates"]) == sorted(danas)

    # The API: every field of hers reads [erased], in detail and timeline; others are intact.
    for incident_id in danas:
        shown = client.get(f"/v1/incidents/{incident_id}", headers=admin).json()
        assert (shown["title"], shown["description"], shown["caller"]) == ("[erased]",) * 3
        timeline = client.get(f"/v1/incidents/{incident_id}/timeline", headers=admin).text
        assert "Dana" not in timeline and "[erased]" in timeline
    fox = client.get(f"/v1/incidents/{world['others'][0]}", headers=admin).json()
    assert fox["caller"] == "Fox Mulder" and fox["title"] == "VPN drops 0"
    audit_csv = client.get("/v1/audit/events?format=csv", headers=admin).text
    assert "Dana" not in audit_csv and "Fox Mulder" in audit_csv

    # The figures are computed from structural fields: unchanged.
    assert _figures(client, admin) == before

    # An audit export of her incident holds ciphertext only, and still verifies.
    bundle = tmp_path / "bundle"
    with container.store_db.transaction(read_only=True) as tx:
        rows = tx.execute(
            "SELECT rowid FROM stored_events WHERE originator_id = %s",
            [danas[0].replace("-", "")],
        ).fetchall()
    positions = [int(row[0]) for row in rows]
    assert len(positions) == 5
    write_bundle(
        bundle, container.proven_events(), positions, KEY.public_key(), {"aggregate": danas[0]}
    )
    assert "Dana" not in (bundle / "events.jsonl").read_text()
    assert verify_bundle(bundle, KEY.public_key()) == []

    # The store and the topic still verify: the hashes cover ciphertext, which did not change.
    dialect = container.desk.recorder.chain.dialect
    report = StoreVerification(
        container.store_db, dialect, KEY.public_key(), keep_hashes=True
    ).run()
    assert report.clean, [f.line() for f in report.findings]
    desk = container.desk
    on_kafka = KafkaVerification(
        report.hashes,
        RelayPosition(container.store_db, world["topic"]).get() - 1,
        lambda after, limit: desk.recorder.select_notifications(start=after + 1, limit=limit),
        lambda n: to_envelope(desk.publishing_mapper, n),
    ).run(topic_records(container.settings.kafka_bootstrap, world["topic"], lambda n: None))
    assert on_kafka == []

    # A fresh read database, replayed from Kafka offset 0: no clear text of hers either.
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    replica = bootstrap(
        _settings(world["dir"], container.settings.kafka_bootstrap, world["topic"], fresh_dir)
    )
    try:
        for runner in replica.runners:
            assert rebuild(replica, runner.projection.name, show_progress=False) > 0
        assert _clear_text_in(fresh_dir / "readmodels.db") == []
        fresh_client, fresh_admin = _client(replica)
        shown = fresh_client.get(f"/v1/incidents/{danas[1]}", headers=fresh_admin).json()
        assert shown["caller"] == "[erased]"
        assert _figures(fresh_client, fresh_admin) == before
    finally:
        replica.close()
