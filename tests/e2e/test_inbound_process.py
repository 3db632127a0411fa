"""`itsm inbound` as its own process: it applies what arrives on itsm.inbound, dead-letters
what it cannot apply, and says so on its /metrics endpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from kafka import KafkaProducer

from infra.messaging.cloudevents import cloudevent
from tests.e2e.test_http_through_kafka import ROOT, free_port
from tests.unit.test_inbound_source_records import snap
from tests.waiting import wait_until


def test_the_inbound_process_reports_what_it_applied_and_rejected(
    tmp_path, kafka_bootstrap, kafka_topic_prefix
):
    port, topic = free_port(), f"{kafka_topic_prefix}.inbound"
    env = {
        **os.environ,
        "ITSM_DATA_DIR": str(tmp_path),
        "ITSM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ITSM_INBOUND_TOPIC": topic,
        "ITSM_KAFKA_PARTITIONS": "1",
    }
    with open(tmp_path / "inbound.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "inbound", "--metrics-port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        data = snap(0)
        producer.send(
            topic,
            key=data["ref"].encode(),
            value=cloudevent("incident.snapshot", "servicenow://acme", "e1", data["ref"], data),
        )
        producer.send(topic, key=b"junk", value=b"{not json")
        producer.flush()

        def counters() -> dict[str, float]:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                return {}
            found = {}
            for line in text.splitlines():
                if line.startswith("itsm_inbound_messages_total{"):
                    labels, _, value = line.rpartition(" ")
                    status = labels.split('status="')[1].split('"')[0]
                    found[status] = found.get(status, 0) + float(value)
            return found if found.get("applied") and found.get("rejected") else {}

        found = wait_until(counters, timeout=60, what="the inbound counters")
        assert found == {"applied": 1.0, "rejected": 1.0}
    finally:
        producer.close()
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, (tmp_path / "inbound.log").read_text()[-2000:]
