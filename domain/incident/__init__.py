"""Incident management: restore normal service operation as quickly as possible."""
