"""Development helpers: a Kafka broker from its jars and a throwaway PostgreSQL.

Not in the wheel."""
