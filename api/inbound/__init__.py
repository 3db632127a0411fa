"""Inbound route: one CloudEvent over HTTP, the same path as the Kafka consumer."""
