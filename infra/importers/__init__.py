"""Importers that turn another tool's export into inbound CloudEvents."""
