"""Incident read models: the one fold of the incident's events, and the queue."""
