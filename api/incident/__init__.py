"""Incident routes: log, queue, inspect, act on and audit incidents."""
