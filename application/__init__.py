"""Use cases: the one write path, and one folder per practice.

Imports domain and projections, never an adapter."""
