"""SQLite and PostgreSQL behind one small interface (the read models' ReadStore)."""
