"""PostgreSQL, the store of record and the read models' database, restarted and then away for
30 s under HTTP load, with the API, the relay and the worker on it."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.faults.harness import (
    Findings,
    Load,
    ReadinessLog,
    Sent,
    assert_exactly_once,
    base_env,
    client,
    current,
    free_port,
    pipeline,
    prepare,
    relay_caught_up,
    running,
    stored_causes,
    stored_head,
    times_until,
    wait_ready,
    wait_started,
)
from tests.waiting import wait_until

OUTAGE = 30.0
RECOVERY_BOUND = 20.0  # seconds from the database's return; the target is 10
ANSWER_BOUND = 3.0  # /health/ready answers within this while the database is away
COMMAND_ANSWER_BOUND = 10.0  # and a command is refused within this


class CommandProbe(threading.Thread):
    """One comment on an existing incident, sent at `when` (time.monotonic()), with a client
    that waits up to a minute for the answer."""

    def __init__(self, port: int, key: str, incident: str, request_id: str, when: float):
        super().__init__(daemon=True)
        self.port, self.key, self.incident, self.request_id = port, key, incident, request_id
        self.when = when
        self.sent: Sent | None = None

    def start(self) -> CommandProbe:
        super().start()
        return self

    def run(self) -> None:
        time.sleep(max(self.when - time.monotonic(), 0))
        started = time.monotonic()
        with client(self.port, self.key, timeout=60) as http:
            try:
                answer = http.post(
                    f"/v1/incidents/{self.incident}/comment",
                    json={"text": "still down?"},
                    headers={"X-Request-ID": self.request_id},
                )
                status, body = answer.status_code, answer.text[:300]
            except httpx.TransportError as error:
                status, body = None, repr(error)
        self.sent = Sent(
            self.request_id, "comment", self.incident, started, time.monotonic(), status, body=body
        )


def recovery_times(
    load: Load, settings, topic: str, acked: dict[str, int], head: int, back: float
) -> dict[str, float]:
    """Seconds from the database's return until a command sent after it was acknowledged,
    until the relay had published everything stored before it, and until every read model
    had taken in every command acknowledged before it."""
    return times_until(
        {
            "command": lambda: any(s.started >= back for s in load.acknowledged()),
            "relay": lambda: relay_caught_up(settings.store_url, topic, head),
            "read models": lambda: current(settings.read_url, acked),
        },
        back,
        timeout=120,
    )


@pytest.mark.slow
def test_postgresql_restarted_and_away_for_30s_loses_no_acknowledged_command(
    tmp_path, own_postgres, kafka_bootstrap, kafka_topic_prefix, recovery_figures
):
    port, topic = free_port(), f"{kafka_topic_prefix}.events"
    env = base_env(
        tmp_path,
        ITSM_DATABASE_URL=own_postgres.url,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-pg",
    )
    settings, key = prepare(env, kafka_bootstrap, topic)
    assert settings.read_url == own_postgres.url  # the read models live there too
    serve, relay, worker = pipeline(env, tmp_path)
    with running(serve, relay, worker), client(port, key) as http:
        wait_started(serve, relay, worker)  # all three, not only the API (test_startup_race.py)
        wait_ready(http)
        readiness = ReadinessLog(port, interval=1.0).start()
        load = Load(port, key, "pg").start()
        probes: list[CommandProbe] = []
        try:
            load.wait_acknowledged(30)
            wait_until(
                lambda: current(settings.read_url, load.acked_versions()),
                timeout=60,
                interval=0.1,
                what="the read models before the restart",
            )

            # 1. A restart: a clean stop and an immediate start.
            restarting = time.monotonic()
            own_postgres.stop()
            own_postgres.start()
            back = time.monotonic()
            acked = load.acked_versions()
            head = stored_head(settings.store_url)
            took = recovery_times(load, settings, topic, acked, head, back)
            commands_back, relayed, restart_recovery = (
                took["command"],
                took["relay"],
                took["read models"],
            )
            recovery_figures.record(
                tmp_path,
                "PostgreSQL restart, from the server up again to read models current",
                restart_recovery,
                f"down {back - restarting:.1f} s; first command acknowledged "
                f"{commands_back:.1f} s after; relay caught up {relayed:.1f} s after",
            )
            load.wait_acknowledged(20)

            # 2. A crash (immediate shutdown: no checkpoint, every backend killed), then 30 s
            # with no database at all.
            crashing = time.monotonic()
            own_postgres.crash()
            down = time.monotonic()
            # Commands on incidents that exist (the load mostly logs new ones while the
            # database is away, after its first refusal), each from its own client.
            known = sorted(load.acked_versions())[:3]
            probes = [
                CommandProbe(port, key, incident, f"probe-{n}", down + 2 + 6 * n).start()
                for n, incident in enumerate(known)
            ]
            wait_until(
                lambda: (
                    sum(1 for s in load.snapshot() if s.started >= down and s.status == 503) >= 3
                    or load.error
                ),
                timeout=OUTAGE,
                interval=0.1,
                what="commands answered 503",
            )
            wait_until(
                lambda: time.monotonic() - down >= OUTAGE,
                timeout=OUTAGE + 5,
                interval=0.1,
                what="the outage to last",
            )
            alive_at_end_of_outage = {p.name: p.alive() for p in (serve, relay, worker)}
            own_postgres.start()
            back2 = time.monotonic()
            acked2 = load.acked_versions()
            head = stored_head(settings.store_url)
            took = recovery_times(load, settings, topic, acked2, head, back2)
            commands_back2, relayed, outage_recovery = (
                took["command"],
                took["relay"],
                took["read models"],
            )
            recovery_figures.record(
                tmp_path,
                "PostgreSQL crash + 30 s outage, from the server up again to read models current",
                outage_recovery,
                f"down {back2 - down:.1f} s; first command acknowledged {commands_back2:.1f} s "
                f"after; relay caught up {relayed:.1f} s after",
            )
            load.wait_acknowledged(30)
        finally:
            load.stop()
        wait_until(
            lambda: current(settings.read_url, load.acked_versions()),
            timeout=60,
            interval=0.1,
            what="the read models after the outage",
        )
        final = wait_ready(http, timeout=60, what="/health/ready ok after the outage")
        readiness.stop()
        for probe in probes:
            probe.join()
        alive_after = {p.name: p.alive() for p in (serve, relay, worker)}

    log = readiness.describe(down - 3, down)
    print(f"readiness around the 30 s outage (t=0: crash):\n{log}")
    print(
        f"commands around the restart (t=0: stop):\n"
        f"{load.describe(restarting - 1, back + commands_back + 1, restarting)}"
    )
    print(
        f"commands around the outage (t=0: crash):\n"
        f"{load.describe(down - 1, back2 + commands_back2 + 1, down)}"
    )
    sent = load.snapshot()
    written = stored_causes(settings)
    during = [s for s in sent if down <= s.started and s.finished <= back2]
    print(
        "commands on existing incidents during the outage (t=0: crash):\n"
        + "\n".join(
            f"  t={p.sent.started - down:5.1f}s comment -> {p.sent.status} in "
            f"{p.sent.finished - p.sent.started:.1f}s"
            for p in probes
        )
    )
    for s in sent:
        if s.status is None:  # no answer within the client's timeout: either outcome is fine
            print(
                f"unanswered: {s.action} {s.request_id} sent at t={s.started - down:.1f}s "
                f"(t=0: crash): {s.body}; written: {s.request_id in written}"
            )
    findings = Findings()
    with findings.check("every acknowledged command in every read model exactly once"):
        assert_exactly_once(settings.read_url, settings, tmp_path, load.acknowledged())
    with findings.check("no 500, ever"):
        assert not [s for s in sent if s.status == 500], [s for s in sent if s.status == 500][:3]
    with findings.check("the relay and the worker outlive the outage"):
        assert (
            alive_at_end_of_outage == alive_after == {"serve": True, "relay": True, "worker": True}
        ), (relay.tail(), worker.tail())
    with findings.check("commands during the outage: 503, none written"):
        assert during and all(s.status == 503 for s in during), sorted(
            {(s.status, s.body[:200]) for s in during}, key=repr
        )[:5]
        assert not written & {s.request_id for s in during}
    with findings.check(
        f"commands on existing incidents during the outage: 503 within "
        f"{COMMAND_ANSWER_BOUND:g} s, none written"
    ):
        assert len(probes) == 3
        assert [(p.sent.status, p.sent.request_id in written) for p in probes] == [
            (503, False)
        ] * 3, [
            (
                p.sent.status,
                round(p.sent.finished - p.sent.started, 1),
                p.sent.request_id in written,
            )
            for p in probes
        ]
        assert all(p.sent.finished - p.sent.started < COMMAND_ANSWER_BOUND for p in probes)
    with findings.check("after each return, once a command succeeded, every later one did"):
        for moment in (back, back2):
            later = [s for s in sent if s.started >= moment]
            first = next(i for i, s in enumerate(later) if s.acknowledged)
            failed = [
                s
                for s in later[first:]
                if not s.acknowledged and (moment == back2 or s.finished < crashing)
            ]
            assert not failed, [(s.status, s.body[:200]) for s in failed][:3]
    with findings.check(
        f"/health/ready during the outage: 503, Retry-After, a problem "
        f"document, within {ANSWER_BOUND:g} s"
    ):
        samples = readiness.between(down + 0.5, back2)
        assert len(samples) >= 10, log
        for sample in samples:
            assert sample.status == 503, log
            assert sample.finished - sample.started <= ANSWER_BOUND, log
            assert sample.retry_after and sample.content_type == "application/problem+json", log
            assert {"event_store", "read_database"} <= set(sample.body["failing"]), log
        assert final["status"] == "ok"
    with findings.check("commands succeed again within 10 s of the database's return"):
        assert commands_back < 10 and commands_back2 < 10, (commands_back, commands_back2)
    with findings.check(f"read models current within {RECOVERY_BOUND:g} s of its return"):
        assert restart_recovery < RECOVERY_BOUND and outage_recovery < RECOVERY_BOUND, (
            restart_recovery,
            outage_recovery,
        )
    findings.assert_none()
