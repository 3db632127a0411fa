"""postgresql://user:pass@host:port/db -> the eventsourcing library's settings."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def eventsourcing_env(url: str) -> dict[str, str]:
    """Map postgresql://user:pass@host:port/db to eventsourcing.postgres env keys."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "infra.event_store.fail_fast_postgres:Factory",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        # eventsourcing raises if the key is missing, but "" is accepted.
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # After a server restart the pool's connections are dead: check each before use,
        # and fail fast (then retry) rather than wait 30 s while the server is away.
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_CONNECT_TIMEOUT": "5",
    }
