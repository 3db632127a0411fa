"""Continual improvement: improvements from proposal through approval to verified closure."""
