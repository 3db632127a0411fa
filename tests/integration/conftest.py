"""What the Kafka tests share: a desk on SQLite in tmp_path, configured for a real broker
with a topic of its own (three partitions) and its dead-letter topic."""

from __future__ import annotations

import pytest

from infra.composition_root import bootstrap
from infra.messaging.kafka_topics import ensure_topics
from infra.settings import Settings


@pytest.fixture
def container(tmp_path, kafka_bootstrap, kafka_topic_prefix):
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        kafka_partitions=3,
        events_topic=f"{kafka_topic_prefix}.events",
    )
    c = bootstrap(settings)
    ensure_topics(kafka_bootstrap, [settings.events_topic, f"{settings.events_topic}.dlq"], 3)
    yield c
    c.close()
