"""The audit trail: every event of every aggregate, who acted, why, and what changed."""
