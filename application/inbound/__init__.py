"""Inbound events: other tools' records and monitoring alerts, as the same commands an agent sends."""
