"""Access: API keys as audited aggregates, and the roles a key may carry."""
