"""A batch fails, and so does the rewind after it (the database is still away), then the
database answers again: the worker must go back to the stored position, not on from where
its consumer had got to.

Found while writing the PostgreSQL outage case: there the two failures need the database
to come back between one call and the next, which no outage schedules reliably, so this
case fails the calls themselves (real broker, in-process worker, as in
tests/integration/test_projection_worker_liveness.py)."""

from __future__ import annotations

import sqlite3

from kafka import KafkaConsumer, TopicPartition

from infra.messaging.supervised_consumer import ConsumerMetrics
from tests.integration.test_projection_worker_liveness import (  # noqa: F401 - a fixture
    container,
    publish,
    rows,
    run,
    worker,
)

INCIDENTS = 30
BATCH = 10  # records per poll: three batches on the one partition


def test_a_batch_that_failed_with_its_rewind_is_applied_once_the_database_is_back(
    container, monkeypatch
):
    publish(container, INCIDENTS)
    runner = container.runner("incidents")
    real_apply, real_positions = runner.apply_batch, runner.positions
    failing = {"apply": 1, "rewind": 0}

    def apply_batch(*args, **kwargs):
        if failing["apply"]:
            failing["apply"] -= 1
            failing["rewind"] = 1  # the read after this failure fails too
            raise sqlite3.OperationalError("database is locked")
        return real_apply(*args, **kwargs)

    def positions(*args, **kwargs):
        if failing["rewind"]:
            failing["rewind"] -= 1
            raise sqlite3.OperationalError("unable to open database file")
        return real_positions(*args, **kwargs)

    monkeypatch.setattr(runner, "apply_batch", apply_batch)
    monkeypatch.setattr(runner, "positions", positions)
    topic = container.settings.events_topic
    metrics = ConsumerMetrics()
    # Until the worker's stored positions are at the end of the topic, partition by
    # partition: everything it will ever apply of what was published. (A sum of positions
    # counts the number sequence's events too: one partition alone could reach it.)
    ends = _ends(container.settings.kafka_bootstrap, topic)
    run(
        worker(container, max_records=BATCH, metrics=metrics),
        lambda: all(real_positions(topic).get(p, 0) >= end for p, end in ends.items()),
        timeout=60,
    )
    assert metrics.failures.labels("incidents")._value.get() >= 1
    assert failing == {"apply": 0, "rewind": 0}  # both failures happened
    assert rows(container) == INCIDENTS, (
        f"{INCIDENTS - rows(container)} incidents skipped: the batch that failed was never "
        f"applied, the position moved past it"
    )


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()
