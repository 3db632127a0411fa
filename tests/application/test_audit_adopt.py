"""A store recorded before the hash chain existed is chained from its first event at the
next start, and verifies clean; later events follow on (infra/audit/event_chain.py)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.checkpoints import Checkpointer
from infra.audit.store_verification import StoreVerification
from infra.composition_root import bootstrap
from infra.settings import Settings

CTX = Context(Actor("alice"), "adopt-test")


class Unchained(Settings):
    """The store as the library's own recorder wrote it, before the chain."""

    def _sqlite_env(self) -> dict[str, str]:
        return {**super()._sqlite_env(), "PERSISTENCE_MODULE": "eventsourcing.sqlite"}


def _work(container, n: int) -> None:
    incident = container.desk.create(
        LogIncident(title=f"Printer {n}", caller="bob", impact=2, urgency=2), CTX
    )
    container.desk.execute(incident.id, Assign(group="desk"), CTX)
    container.desk.execute(incident.id, Comment(text="toner"), CTX)


def test_an_unchained_store_is_adopted_and_verifies(tmp_path):
    old = bootstrap(Unchained(data_dir=tmp_path))
    for n in range(4):
        _work(old, n)
    recorded = old.desk.stored_events()
    old.close()

    container = bootstrap(Settings(data_dir=tmp_path))
    try:
        with container.store_db.transaction(read_only=True) as tx:
            (chained,) = tx.execute("SELECT COUNT(*) FROM event_chain").fetchone()
        assert chained == recorded
        _work(container, 5)  # new events follow the adopted chain
        key = Ed25519PrivateKey.generate()
        Checkpointer(container.store_db, key).take()
        dialect = container.desk.recorder.chain.dialect
        report = StoreVerification(container.store_db, dialect, key.public_key()).run()
        assert report.clean, [f.line() for f in report.findings]
        assert report.events == container.desk.stored_events() > recorded
    finally:
        container.close()
