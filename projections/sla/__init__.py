"""SLA clocks, from events only, and the queries that bring them up to now."""
