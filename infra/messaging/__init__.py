"""Kafka and CloudEvents: the relay, the consumers, dead letters, topics."""
