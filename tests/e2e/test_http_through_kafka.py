"""End to end with real processes: HTTP -> event store -> relay -> Kafka -> worker -> HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def itsm(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", *args], env=env, cwd=ROOT, stdout=out, stderr=out
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request, tmp_path, kafka_bootstrap, kafka_topic_prefix):
    port = free_port()
    env = {
        **os.environ,
        "ITSM_DATA_DIR": str(tmp_path),
        "ITSM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ITSM_EVENTS_TOPIC": f"{kafka_topic_prefix}.events",
        "ITSM_KAFKA_PARTITIONS": "3",
        "ITSM_PORT": str(port),
        "ITSM_WORKER_ID": "e2e",
    }
    if request.param == "postgresql":  # the scale-out shape: several API processes
        env["ITSM_DATABASE_URL"] = request.getfixturevalue("pg_database")
        env["ITSM_API_WORKERS"] = "2"
    key = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", "--role", "admin", "--name", "e2e"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    processes = [
        itsm(name, env=env, log=tmp_path / f"{name}.log") for name in ("serve", "relay", "worker")
    ]
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )

    def healthy():
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout=60, what="the API to start")
        yield client
    finally:
        client.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_command_over_http_reaches_the_read_models_through_kafka(stack):
    created = stack.post(
        "/v1/incidents",
        json={
            "title": "VPN drops every hour",
            "caller": "dana",
            "channel": "email",
            "impact": 1,
            "urgency": 2,
            "service": "vpn",
        },
    ).json()
    incident_id = created["id"]
    for action, body in (
        ("assign", {"group": "network", "agent": "erin"}),
        ("acknowledge", {}),
        ("resolve", {"code": "config", "notes": "MTU"}),
    ):
        response = stack.post(
            f"/v1/incidents/{incident_id}/{action}",
            json=body,
            headers={"X-Request-ID": f"e2e-{action}"},
        )
        assert response.status_code == 200, response.text

    def listed():  # the list comes only from the read model, never from the event store
        page = stack.get("/v1/incidents", params={"number": created["number"]}).json()
        return page["items"] and page["items"][0]["version"] == 4 and page["items"][0]

    row = wait_until(listed, timeout=60, what="the incidents read model")
    assert (row["state"], row["priority"], row["assignment_group"], row["assignee"]) == (
        "resolved",
        "P2",
        "network",
        "erin",
    )
    timeline = wait_until(
        lambda: len(t := stack.get(f"/v1/incidents/{incident_id}/timeline").json()) == 4 and t,
        timeout=60,
        what="the audit timeline",
    )
    assert [e["event"] for e in timeline] == ["Logged", "Assigned", "Acknowledged", "Resolved"]
    assert timeline[2]["causation_id"] == "e2e-acknowledge"
    assert {"field": "state", "before": "in_progress", "after": "resolved"} in timeline[3][
        "changes"
    ]
    metrics = stack.get("/metrics").text
    # four incident events, the default policy, the number sequence's start and issue, and
    # the API key's issue
    assert "itsm_events_stored 8.0" in metrics
