"""Settings, the event store, Kafka relay and consumers, the CLI, the composition root."""
