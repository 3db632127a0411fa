"""KPIs for analysts: facts per incident and their state intervals."""
