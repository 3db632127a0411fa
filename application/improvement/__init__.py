"""Continual improvement: the practice's declaration (and, later, its use cases)."""
