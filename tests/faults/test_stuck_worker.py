"""A worker process that stops consuming without dying (SIGSTOP: every thread frozen, its
sockets open, so nothing inside it can notice): the API's /health/ready is what must tell.

The in-process cases (a consumer that stops fetching, a poll that never returns) are in
tests/integration/test_projection_worker_liveness.py; this is the one only real processes
show: the read models stall while the commands go on being acknowledged, readiness says
`stalled` (503) once they have not moved for ITSM_HEALTH_STALL_SECONDS, and all is current
and ready again once the worker runs again."""

from __future__ import annotations

import os
import signal
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

STALL_SECONDS = 3


@pytest.mark.slow
def test_a_frozen_worker_shows_as_stalled_and_catches_up_when_it_runs_again(
    tmp_path, kafka_bootstrap, kafka_topic_prefix, recovery_figures
):
    port, topic = free_port(), f"{kafka_topic_prefix}.events"
    env = base_env(
        tmp_path,
        ITSM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITSM_EVENTS_TOPIC=topic,
        ITSM_KAFKA_PARTITIONS="3",
        ITSM_PORT=str(port),
        ITSM_WORKER_ID="faults-stuck",
        ITSM_HEALTH_STALL_SECONDS=str(STALL_SECONDS),
    )
    settings, key = prepare(env, kafka_bootstrap, topic)
    serve, relay, worker = pipeline(env, tmp_path)
    with running(serve, relay, worker), client(port, key) as http:
        wait_started(serve, relay, worker)
        wait_ready(http)
        readiness = ReadinessLog(port, interval=0.5).start()
        load = Load(port, key, "s").start()
        frozen = False
        try:
            load.wait_acknowledged(20)
            wait_until(
                lambda: current(settings.read_url, load.acked_versions()),
                timeout=60,
                interval=0.1,
                what="the read models before the worker freezes",
            )
            os.kill(worker.pid, signal.SIGSTOP)
            frozen, stopped = True, time.monotonic()
            every = {f"projection {name}" for name in PROJECTIONS}

            def stalled():
                # Every read model named: each is once it has not moved for STALL_SECONDS
                # after its own last batch, and they froze together, not all after one batch.
                sample = readiness.samples[-1] if readiness.samples else None
                return (
                    sample is not None
                    and sample.started > stopped
                    and sample.status == 503
                    and set(sample.body["failing"]) == every
                    and sample
                )

            said = wait_until(
                stalled,
                timeout=STALL_SECONDS + 20,
                interval=0.1,
                what="/health/ready to say the read models are stalled",
            )
            os.kill(worker.pid, signal.SIGCONT)
            frozen, resumed = False, time.monotonic()
            acked = load.acked_versions()
            recovery = time_until_current(settings.read_url, acked, resumed, timeout=60)
            recovery_figures.record(
                tmp_path,
                "frozen worker (SIGSTOP), from SIGCONT to read models current",
                recovery,
                f"frozen {resumed - stopped:.1f} s; /health/ready said "
                f"stalled {said.started - stopped:.1f} s after the freeze",
            )
            load.wait_acknowledged(20)
        finally:
            if frozen:
                os.kill(worker.pid, signal.SIGCONT)
            load.stop()
        wait_until(
            lambda: current(settings.read_url, load.acked_versions()),
            timeout=60,
            interval=0.1,
            what="the read models after the worker ran again",
        )
        final = wait_ready(http, timeout=30, what="/health/ready ok after the worker ran again")
        readiness.stop()
        assert worker.alive() and relay.alive() and serve.alive()

    log = readiness.describe(stopped - 2, stopped)
    print(f"readiness around the freeze (t=0: SIGSTOP):\n{log}")
    assert_exactly_once(settings.read_url, settings, tmp_path, load.acknowledged())
    # The API went on acknowledging commands while nothing fed the read models.
    assert len([s for s in load.acknowledged() if stopped <= s.started <= resumed]) >= 10
    # What readiness said while the worker was frozen was true: behind (catching up) at
    # first, then stalled with every read model named, never "ok" ...
    frozen_samples = readiness.between(stopped + 1.0, resumed)
    assert frozen_samples, log
    for sample in frozen_samples:
        assert sample.status in (200, 503) and sample.verdict != "ok", log
        assert sample.component("event_store") == "ok", log
        assert all(
            p["status"] in ("catching_up", "stalled") and p["lag"] > 0
            for p in sample.projections().values()
        ), log
    assert said.retry_after and said.content_type == "application/problem+json"
    assert said.started - stopped < STALL_SECONDS + 10, log
    # ... and ready again once it ran.
    assert final["status"] == "ok"
    assert recovery < 10, f"read models current {recovery:.1f} s after the worker ran again"
