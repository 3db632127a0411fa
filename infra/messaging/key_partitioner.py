"""Kafka's default partition for a key (murmur2, as the Java client), remembered per key."""

from __future__ import annotations

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2


class KeyPartitioner(DefaultPartitioner):
    """Kafka's default partition for a key (murmur2, as the Java client), remembered per key.

    kafka-python hashes in pure Python, once per record; an incident's events all carry its
    key, and the hash was a tenth of the relay's time.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        if topic not in cluster.topics():
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        partitions = sorted(cluster.partitions_for_topic(topic))
        return partitions[hashed % len(partitions)]
