"""Poison values: refused at the door over HTTP, dead-lettered on Kafka, and, for one already
in the store, quarantined by the read models that cannot fold it while the rest flows on."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID

import pytest

from domain.incident.commands import LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap
from infra.messaging.cloudevents import cloudevent
from infra.messaging.kafka_topics import ensure_topics
from tests.faults.harness import (
    PROJECTIONS,
    Load,
    Proc,
    ReadinessLog,
    Sent,
    assert_exactly_once,
    base_env,
    client,
    committed_offsets,
    current,
    dump,
    end_offsets,
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

PROBLEM = "application/problem+json"
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def test_poison_values_over_http_are_422_and_write_nothing(tmp_path):
    """`itsm serve` (embedded: SQLite, in-process feed): a NUL or an escape sequence in a
    command is refused with 422 and leaves the store and every read model as they were."""
    port = free_port()
    env = base_env(tmp_path, ITSM_PORT=str(port))
    settings = settings_of(env)
    container = bootstrap(settings)
    key = container.keys.create("admin", "faults")
    serve = Proc("serve", ["serve"], env, tmp_path / "serve.log")
    with running(serve), client(port, key) as http:
        wait_ready(http)
        readiness = ReadinessLog(port, interval=0.5).start()
        good = http.post(
            "/v1/incidents",
            json={"title": "Mail slow", "caller": "ann", "impact": 2, "urgency": 2},
            headers={"X-Request-ID": "good-1"},
        )
        assert good.status_code == 201, good.text
        incident = good.json()["id"]
        wait_until(
            lambda: current(settings.read_url, {incident: 1}),
            timeout=30,
            what="the read models to take in the good incident",
        )
        stored = container.desk.stored_events()

        poison = [
            (
                "/v1/incidents",
                {"title": "VPN\u0000down", "caller": "bob", "impact": 1, "urgency": 1},
            ),
            (
                "/v1/incidents",
                {
                    "title": "VPN down",
                    "caller": "bob",
                    "impact": 1,
                    "urgency": 1,
                    "description": "see \u001b[2J\u001b[H here",
                },
            ),
            (f"/v1/incidents/{incident}/comment", {"text": "bell\u0007 and NUL\u0000"}),
            (f"/v1/incidents/{incident}/comment", {"text": "escape \u001b]0;pwned\u0007"}),
            (f"/v1/incidents/{incident}/assign", {"group": "net\u0000work"}),
        ]
        answers = [
            http.post(path, json=body, headers={"X-Request-ID": f"poison-{n}"})
            for n, (path, body) in enumerate(poison)
        ]
        refused = [(a.status_code, a.headers.get("content-type"), a.text[:300]) for a in answers]
        # Nothing was written: not an event, not a read-model row.
        assert container.desk.stored_events() == stored
        after = http.post(
            f"/v1/incidents/{incident}/comment",
            json={"text": "still fine"},
            headers={"X-Request-ID": "good-2"},
        )
        assert after.status_code == 200 and after.json()["version"] == 2, after.text
        second = http.post(
            "/v1/incidents",
            json={"title": "Mail down", "caller": "ann", "impact": 2, "urgency": 2},
            headers={"X-Request-ID": "good-3"},
        )
        assert second.status_code == 201, second.text
        print(
            f"incident numbers around the refused commands: {good.json()['number']}, "
            f"{second.json()['number']}"
        )
        wait_until(
            lambda: current(settings.read_url, {incident: 2, second.json()["id"]: 1}),
            timeout=30,
            what="the read models to take in the good commands",
        )
        final = wait_ready(http, timeout=30)
        readiness.stop()
    container.close()

    assert all(status == 422 and kind == PROBLEM for status, kind, _ in refused), refused
    later = dump(settings.read_url)
    incident_lines = [
        dict(r) for r in later["rm_audit_trail"] if dict(r)["aggregate_type"] == "Incident"
    ]
    assert sorted((r["causation_id"], r["version"]) for r in incident_lines) == [
        ("good-1", 1),
        ("good-2", 2),
        ("good-3", 1),
    ]
    texts = [str(value) for rows in later.values() for row in rows for _, value in row]
    assert not [
        t
        for t in texts
        if "poison" in t
        or any(c in t for c in ("\x00", "\x07", "\x1b", "\\u0000", "\\u0007", "\\u001b"))
    ]
    acknowledged = [
        Sent("good-1", "log", incident, 0, 0, 201, 1),
        Sent("good-2", "comment", incident, 0, 0, 200, 2),
        Sent("good-3", "log", second.json()["id"], 0, 0, 201, 1),
    ]
    assert_exactly_once(settings.read_url, settings, tmp_path, acknowledged)
    # /health/ready said the instance could serve throughout, with nothing quarantined
    # (at most a read model a moment behind), and so it was.
    assert readiness.samples, readiness.describe()
    for sample in readiness.samples:
        assert sample.status == 200 and sample.verdict in ("ok", "degraded"), readiness.describe()
        assert all(
            p["quarantined"] == 0 and p["status"] in ("ok", "catching_up")
            for p in sample.projections().values()
        ), readiness.describe()
    assert final["components"]["event_store"]["status"] == "ok"


def _alert(event_id: str, check: str, time: str) -> bytes:
    return cloudevent(
        "alert.fired",
        "prometheus://faults",
        event_id,
        f"mail/{check}",
        {"service": "mail", "check": check, "summary": f"{check} failing", "severity": "major"},
        time=time,
    )


@pytest.mark.slow
def test_poison_cloudevents_on_kafka_are_dead_lettered_and_the_consumer_moves_on(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    """An impossible date (month 13) and the last second of year 9999, between good alerts
    on one partition: the good ones reach every read model once, the poison ones are in
    `<topic>.dlq` with their reason, and the group's offset is past all of them."""
    from kafka import KafkaProducer

    port = free_port()
    topic, inbound = f"{kafka_topic_prefix}.events", f"{kafka_topic_prefix}.inbound"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_INBOUND_TOPIC=inbound,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-poison",
    )
    settings = settings_of(env)
    container = bootstrap(settings)
    key = container.keys.create("admin", "faults")
    container.close()
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], 3)
    ensure_topics(kafka_bootstrap, [inbound], 1)  # one partition: the order below is total
    messages = [
        ("good-1", _alert("good-1", "smtp", "2026-03-01T10:00:00Z")),
        ("month-13", _alert("month-13", "imap", "2026-13-01T10:00:00Z")),
        ("good-2", _alert("good-2", "pop3", "2026-03-01T10:01:00Z")),
        ("end-of-time", _alert("end-of-time", "relay", "9999-12-31T23:59:59Z")),
        ("good-3", _alert("good-3", "dkim", "2026-03-01T10:02:00Z")),
    ]
    procs = [
        Proc(name, [name], env, tmp_path / f"{name}.log")
        for name in ("serve", "relay", "worker", "inbound")
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        with running(*procs), client(port, key) as http:
            wait_started(*procs)
            wait_ready(http)
            for _, value in messages:
                producer.send(inbound, key=b"mail", value=value)
            producer.flush()
            dead = read_topic(kafka_bootstrap, f"{inbound}.dlq", 2, timeout=60)
            wait_until(
                lambda: committed_offsets(kafka_bootstrap, inbound).get(0) == 5,
                timeout=60,
                what="the inbound group's offset past every message",
            )

            def listed():
                page = http.get("/v1/incidents", params={"limit": 50}).json()
                return page["total"] == 3 and page["items"]

            rows = wait_until(listed, timeout=60, what="three incidents in the read model")
            wait_ready(http, timeout=60, what="/health/ready ok with every read model current")
            # While the processes run: a read model that follows another may still be at it.
            assert_exactly_once(settings.read_url, settings, tmp_path, [])
            assert all(p.alive() for p in procs)
    finally:
        producer.close()

    assert [r.value for r in dead] == [messages[1][1], messages[3][1]]
    reasons = [header(r, "reason") for r in dead]
    print(f"dead-letter reasons: {reasons}")
    assert "time" in reasons[0] and "2026-13-01" in reasons[0], reasons
    assert "9999-12-31" in reasons[1], reasons
    assert [header(r, "original_offset") for r in dead] == ["1", "3"]
    assert end_offsets(kafka_bootstrap, inbound) == {0: 5}
    assert sorted(r["external_ref"] for r in rows) == ["mail/dkim", "mail/pop3", "mail/smtp"]
    tables = dump(settings.read_url)
    # Exact strings: a bare "9999" also matches a float or a timestamp's fraction.
    poison = ("9999-12-31", "2026-13-01", "mail/relay", "mail/imap")
    assert not [
        (name, word) for name, rows in tables.items() for word in poison if word in repr(rows)
    ]


@pytest.mark.slow
def test_a_poison_event_in_the_store_quarantines_its_incident_only(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    """An incident whose stored Logged event says it happened at 9999-12-31T23:59:59Z
    (recorded before the checks existed: the domain refuses such a value now, so the test
    writes the stored event past them): the read models that cannot fold it quarantine
    that incident alone, the others and every other incident flow on, /health/ready counts
    it, and `itsm projections failures` lists it."""
    port, topic = free_port(), f"{kafka_topic_prefix}.events"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-quarantine",
    )
    settings = settings_of(env)
    container = bootstrap(settings)
    key = container.keys.create("admin", "faults")
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], 3)
    procs = [
        Proc(name, [name], env, tmp_path / f"{name}.log") for name in ("serve", "relay", "worker")
    ]
    try:
        with running(*procs), client(port, key) as http:
            wait_started(*procs)
            wait_ready(http)
            load = Load(port, key, "q").start()
            try:
                load.wait_acknowledged(20)
                poisoned = write_poisoned_incident(container)
                for n, text in enumerate(("still down", "vendor called")):
                    answer = http.post(
                        f"/v1/incidents/{poisoned}/comment",
                        json={"text": text},
                        headers={"X-Request-ID": f"after-poison-{n}"},
                    )
                    assert answer.status_code == 200, answer.text
                load.wait_acknowledged(40)  # other incidents keep flowing
            finally:
                load.stop()
            # Every read model took in every other incident (nothing stalled behind the
            # poison), and every event of the poisoned one, folded or quarantined.
            wait_until(
                lambda: current(settings.read_url, {**load.acked_versions(), poisoned: 3}),
                timeout=60,
                interval=0.1,
                what="the read models past the poison",
            )
            report = wait_until(
                lambda: quarantine_reported(http),
                timeout=30,
                what="/health/ready to count the quarantine",
            )
            assert all(p.alive() for p in procs)
        failures = itsm(["projections", "failures"], env)
    finally:
        container.close()

    tables = dump(settings.read_url)
    held = {
        (row["projection"], row["aggregate_id"]): row
        for row in map(dict, tables["projection_quarantine"])
        if row["error"] is not None
    }
    quarantining = {projection for projection, _ in held}
    print(f"quarantined: {[(p, a, r['version'], r['error']) for (p, a), r in held.items()]}")
    assert quarantining and {a for _, a in held} == {poisoned}, held
    assert quarantining < set(PROJECTIONS)  # the others fold it
    waiting = {
        (row["projection"], row["version"]) for row in map(dict, tables["projection_quarantine"])
    }
    for projection in quarantining:  # the poison and the two comments wait behind it
        assert {(projection, v) for v in (1, 2, 3)} <= waiting
    timeline = [dict(r) for r in tables["rm_audit_trail"] if dict(r)["aggregate_id"] == poisoned]
    if "timeline" not in quarantining:
        assert [r["version"] for r in sorted(timeline, key=lambda r: r["version"])] == [1, 2, 3]
    projections = report["components"]["projections"]
    assert {n: projections[n]["quarantined"] for n in PROJECTIONS} == {
        n: int(n in quarantining) for n in PROJECTIONS
    }, projections
    assert failures.returncode == 1, failures.stdout + failures.stderr
    listed = {tuple(line.split("\t")[:2]) for line in failures.stdout.splitlines() if line}
    assert listed == {(p, poisoned) for p in quarantining}, failures.stdout
    assert_exactly_once(settings.read_url, settings, tmp_path, load.acknowledged())


def write_poisoned_incident(container) -> str:
    """A new incident whose Logged event carries `at` = 9999-12-31T23:59:59Z, saved as an
    older version of the service would have saved it. The domain checks a new event's
    values as it is constructed, so the value goes in after construction: the store keeps
    what it is given, as it kept such events before the checks existed."""
    desk = container.desk
    ctx = Context(Actor("legacy-import"), "poison-logged")
    command = LogIncident(title="Imported with a bad date", caller="legacy", impact=2, urgency=2)
    with desk.unit_of_work() as work:
        incident = work.create(command, ctx)
        [logged] = incident.pending_events
        object.__setattr__(logged, "at", END_OF_TIME)
        work.commit()
    stored = desk.repository.get(UUID(str(incident.id)))
    assert stored.opened_at == END_OF_TIME  # what the read models will be handed
    return str(incident.id)


def quarantine_reported(http) -> dict | None:
    response = http.get("/health/ready")
    body = response.json()
    projections = body.get("components", {}).get("projections", {})
    if response.status_code == 200 and any(p.get("quarantined") for p in projections.values()):
        return body
    return None
