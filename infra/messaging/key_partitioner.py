"""Kafka's default partition for a key (murmur2, as the Java client), remembered per key."""

from __future__ import annotations

from typing import Protocol

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2


class Cluster(Protocol):
    """The producer's cluster metadata, as a partitioner reads it."""

    def topics(self) -> set[str]: ...
    def partitions_for_topic(self, topic: str) -> set[int]: ...


class KeyPartitioner(DefaultPartitioner):
    """Kafka's default partition for a key (murmur2, as the Java client), remembered per key.

    kafka-python hashes in pure Python, once per record, and an incident's events all carry
    its key: the relay hashes each key once.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def partition(
        self,
        topic: str,
        key: object,
        serialized_key: bytes | None,
        value: object,
        serialized_value: bytes | None,
        cluster: Cluster,
    ) -> int:
        if serialized_key is None:  # a random partition, as the default does
            chosen: int = super().partition(
                topic, key, serialized_key, value, serialized_value, cluster
            )
            return chosen
        if topic not in cluster.topics():
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        partitions = sorted(cluster.partitions_for_topic(topic))
        return partitions[self._hash(serialized_key) % len(partitions)]

    def _hash(self, key: bytes) -> int:
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return hashed
