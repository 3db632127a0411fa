"""The relay's partitioner puts every key where Kafka's default partitioner does."""

from uuid import uuid4

from kafka.partitioner import DefaultPartitioner

from infra.messaging.key_partitioner import KeyPartitioner


class Cluster:
    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self):
        return {"itsm.events"}

    def partitions_for_topic(self, topic):
        return self._partitions

    def available_partitions_for_topic(self, topic):
        return self._partitions


def test_every_key_lands_in_the_default_partition_again_and_again():
    ours, kafka = KeyPartitioner(max_keys=50), DefaultPartitioner()
    keys = [str(uuid4()).encode() for _ in range(200)]
    for partitions in (1, 3, 6, 7):
        cluster = Cluster(partitions)
        for key in keys * 2:  # the second round comes from memory (and past max_keys)
            assert ours.partition("itsm.events", key, key, None, None, cluster) == kafka.partition(
                "itsm.events", key, key, None, None, cluster
            )


def test_a_record_without_key_goes_to_some_partition():
    cluster = Cluster(6)
    assert KeyPartitioner().partition("itsm.events", None, None, None, None, cluster) in range(6)
