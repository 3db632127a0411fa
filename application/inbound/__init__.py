"""Inbound events: other tools' records and monitoring alerts.

They become the same commands an agent sends."""
