"""Audit trail documents."""
