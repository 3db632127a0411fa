"""The broker SIGKILLed and started again on the same data and port, under HTTP load."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import (
    Findings,
    Load,
    ReadinessLog,
    assert_exactly_once,
    base_env,
    client,
    current,
    free_port,
    pipeline,
    prepare,
    running,
    time_until_current,
    wait_ready,
    wait_started,
)
from tests.waiting import wait_until

OUTAGE = 8.0  # seconds the broker stays dead
RECOVERY_BOUND = 20.0  # seconds from the broker's restart; the target is 10


@pytest.mark.slow
def test_a_broker_killed_and_restarted_loses_no_acknowledged_command_and_applies_none_twice(
    tmp_path, own_broker, kafka_topic_prefix, recovery_figures
):
    port, topic = free_port(), f"{kafka_topic_prefix}.events"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=own_broker.bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-broker",
    )
    settings, key = prepare(env, own_broker.bootstrap, topic)
    serve, relay, worker = pipeline(env, tmp_path)
    with running(serve, relay, worker), client(port, key) as http:
        wait_started(serve, relay, worker)
        wait_ready(http)
        readiness = ReadinessLog(port, interval=1.0).start()
        load = Load(port, key, "b").start()
        try:
            load.wait_acknowledged(30)
            wait_until(
                lambda: current(settings.read_url, load.acked_versions()),
                timeout=60,
                interval=0.1,
                what="the read models before the broker dies",
            )

            own_broker.kill()
            killed = time.monotonic()
            # The store of record is the database: the API goes on acknowledging commands.
            load.wait_acknowledged(20, timeout=OUTAGE)
            wait_until(
                lambda: time.monotonic() - killed >= OUTAGE,
                timeout=OUTAGE + 30,
                interval=0.1,
                what="the outage to last",
            )
            restarting = time.monotonic()
            took = own_broker.start()
            restarted = time.monotonic()
            acked = load.acked_versions()
            recovery = time_until_current(settings.read_url, acked, restarted, timeout=120)
            recovery_figures.record(
                tmp_path,
                "broker SIGKILL, from broker serving again to read models current",
                recovery,
                f"outage {restarting - killed:.1f} s; broker start "
                f"{took:.1f} s; {len(acked)} incidents",
            )
            load.wait_acknowledged(20)
        finally:
            load.stop()
        wait_until(
            lambda: current(settings.read_url, load.acked_versions()),
            timeout=60,
            interval=0.1,
            what="the read models after the broker came back",
        )
        wait_ready(http, timeout=60, what="/health/ready ok after the broker came back")
        readiness.stop()
        assert worker.alive() and relay.alive() and serve.alive()

    log = readiness.describe(killed - 3, killed)
    print(f"readiness around the broker's outage (t=0: SIGKILL):\n{log}")
    findings = Findings()
    with findings.check("every acknowledged command in every read model exactly once"):
        assert_exactly_once(settings.read_url, settings, tmp_path, load.acknowledged())
    with findings.check("the API acknowledges commands while the broker is away"):
        during = [s for s in load.acknowledged() if killed <= s.started and s.finished <= restarted]
        assert len(during) >= 20, len(during)
    with findings.check("/health/ready during the outage: not ok, and true about the rest"):
        samples = readiness.between(killed + 0.5, restarted)
        assert len(samples) >= 3, log
        for sample in samples:
            # Not "everything is fine": the read models cannot be fed and the topic's end
            # cannot be read, so they are unknown, catching up or stalled ...
            assert sample.status in (200, 503), log
            if sample.status == 200:
                assert sample.verdict == "degraded", log
            projections = sample.body["components"]["projections"]
            if projections.get("status") != "unavailable":  # no answer within the limit
                assert all(
                    p["status"] in ("unknown", "catching_up", "stalled")
                    for p in sample.projections().values()
                ), log
            # ... and the truth about the rest: the databases were there all along.
            assert sample.component("event_store") == "ok", log
            assert sample.component("read_database") == "ok", log
    with findings.check(f"read models current within {RECOVERY_BOUND:g} s of the restart"):
        assert recovery < RECOVERY_BOUND, f"{recovery:.1f} s"
    findings.assert_none()
