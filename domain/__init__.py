"""Aggregates, value objects and commands of the service desk (ITIL vocabulary)."""
