"""Kafka topics: history topics keep every record forever and are never compacted."""

from __future__ import annotations

import logging
from typing import Any

from kafka.admin import KafkaAdminClient

log = logging.getLogger(__name__)

HISTORY = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int,
    configs: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create missing topics (history topics, unless `configs` names a topic's own);
    existing ones are left as they are (partitions only grow)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="itsm-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            spec = _specs(missing, partitions, configs or {})
            admin.create_topics(spec, raise_errors=False, wait_for_metadata=True)
            log.info("created topics %s with %d partitions", missing, partitions)
    finally:
        admin.close()


def _specs(
    topics: list[str], partitions: int, configs: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    return {
        topic: {
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": configs.get(topic, HISTORY),
        }
        for topic in topics
    }
