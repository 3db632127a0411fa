"""Continual improvement read models: the one fold of an improvement's events, and the
register."""
