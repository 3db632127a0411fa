"""`itsm worker` without ITSM_WORKER_ID (its static member id is the host name), SIGKILLed
mid-stream and started again: current again within seconds of the restart, exactly once."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import (
    PROJECTIONS,
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

RESTART_BOUND = 20.0  # seconds; the target is 10


@pytest.mark.slow
def test_a_worker_without_an_id_killed_mid_stream_is_current_soon_after_restart(
    tmp_path, kafka_bootstrap, kafka_topic_prefix, recovery_figures
):
    port, topic = free_port(), f"{kafka_topic_prefix}.events"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
    )
    assert "ITSM_WORKER_ID" not in env  # the point of this test: the host name is the id
    settings, key = prepare(env, kafka_bootstrap, topic)
    serve, relay, worker = pipeline(env, tmp_path)
    with running(serve, relay, worker), client(port, key) as http:
        wait_started(serve, relay, worker)
        wait_ready(http)
        readiness = ReadinessLog(port, interval=0.5).start()
        load = Load(port, key, "w").start()
        try:
            load.wait_acknowledged(40)
            wait_until(
                lambda: current(settings.read_url, load.acked_versions()),
                timeout=60,
                interval=0.1,
                what="the read models before the kill",
            )

            worker.kill()
            killed = time.monotonic()
            load.wait_acknowledged(30)  # acknowledged, and published, while nobody consumes
            behind = time.monotonic()
            wait_until(
                lambda: len(readiness.between(behind + 1.0, time.monotonic())) >= 2,
                timeout=30,
                interval=0.1,
                what="readiness answers while the worker is down",
            )
            worker.start()
            restarted = time.monotonic()
            acked = load.acked_versions()
            recovery = time_until_current(settings.read_url, acked, restarted, timeout=120)
            recovery_figures.record(
                tmp_path,
                "worker SIGKILL (no ITSM_WORKER_ID), from restart to read models current",
                recovery,
                f"{len(acked)} incidents, {len(load.acknowledged())} commands acknowledged so far",
            )
            load.wait_acknowledged(30)
        finally:
            load.stop()
        wait_until(
            lambda: current(settings.read_url, load.acked_versions()),
            timeout=60,
            interval=0.1,
            what="the read models after the restart",
        )
        final = wait_ready(http, timeout=30, what="/health/ready ok after the restart")
        readiness.stop()
        assert worker.alive() and relay.alive() and serve.alive()

    origin = killed
    log = readiness.describe(killed - 2, origin)
    # While the worker was dead and acknowledged commands were on the topic, every read
    # model was behind: readiness said so (catching_up, lag > 0), never "ok".
    down = readiness.between(behind + 1.0, restarted)
    assert len(down) >= 2, log
    for sample in down:
        assert sample.status == 200 and sample.verdict == "degraded", log
        for name in PROJECTIONS:
            report = sample.projections()[name]
            assert report["status"] in ("catching_up", "stalled") and report["lag"] > 0, log
    assert all(final["components"]["projections"][n]["lag"] == 0 for n in PROJECTIONS)
    assert recovery < RESTART_BOUND, (
        f"read models current {recovery:.1f} s after the worker's restart\n{worker.tail()}"
    )
    assert_exactly_once(settings.read_url, settings, tmp_path, load.acknowledged())
