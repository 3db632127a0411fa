from __future__ import annotations

from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from infra.event_store.postgres_env import eventsourcing_env


def test_database_is_usable(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO t (name) VALUES (%s)", ("hello",))
        rows = conn.execute("SELECT name FROM t").fetchall()
    assert rows == [("hello",)]


class Ticket(Aggregate):
    @event("Opened")
    def __init__(self, title: str) -> None:
        self.title = title


class Tickets(Application):
    def open(self, title: str) -> UUID:
        ticket = Ticket(title)
        self.save(ticket)
        return ticket.id


def test_eventsourcing_postgres_persistence(pg_database: str) -> None:
    app = Tickets(env=eventsourcing_env(pg_database))
    try:
        ticket_id = app.open("printer on fire")
        assert app.repository.get(ticket_id).title == "printer on fire"
        notifications = app.recorder.select_notifications(start=1, limit=10)
        assert [n.originator_id for n in notifications] == [ticket_id]
        assert notifications[0].id == 1
    finally:
        app.close()
