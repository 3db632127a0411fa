"""Adapters for who calls: API keys stored as hashes."""
