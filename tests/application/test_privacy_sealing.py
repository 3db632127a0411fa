"""What the store holds of a person: their incident's fields sealed in events and in
snapshots, opened for the desk's own commands, "[erased]" once their key is gone."""

from __future__ import annotations

import sqlite3

from application.access import Access
from domain.improvement.commands import AcceptImprovement, ProposeImprovement, RevisePlan
from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap
from infra.settings import Settings

CTX = Context(Actor("erin"), "sealing-test")


def test_events_and_snapshots_hold_tokens_and_the_desk_reads_clear_text(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path, snapshot_interval=3))
    try:
        desk = container.desk
        incident = desk.create(
            LogIncident(title="Dana's VPN", caller="Dana Scully", impact=2, urgency=2), CTX
        )
        desk.execute(incident.id, Assign(group="desk"), CTX)
        for n in range(4):
            desk.execute(incident.id, Comment(text=f"called Dana {n}"), CTX)
        with sqlite3.connect(tmp_path / "events.db") as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            stored = [
                bytes(state)
                for table in tables
                if table in ("stored_events", "stored_snapshots")
                for (state,) in db.execute(f"SELECT state FROM {table}")
            ]
            (snapshots,) = db.execute("SELECT COUNT(*) FROM stored_snapshots").fetchone()
        assert snapshots >= 1
        assert all(b"Dana" not in state for state in stored)
        assert sum(b"pii:1:" in state for state in stored) >= 6

        fresh = desk.find(incident.id)  # from its snapshot and the events after it
        assert (fresh.title, fresh.caller) == ("Dana's VPN", "Dana Scully")

        subject = container.vault.pseudonym("caller", "Dana Scully")
        container.vault.erase(subject, "dpo", "asked", "consent_withdrawn")
    finally:
        container.close()
    # Another process (this one's aggregates stay in its memory until evicted; nothing it
    # writes or answers carries them: it seals with a key that is gone).
    again = bootstrap(Settings(data_dir=tmp_path, snapshot_interval=3))
    try:
        erased = again.desk.find(incident.id)
        assert (erased.title, erased.caller) == ("[erased]", "[erased]")
        again.desk.execute(incident.id, Comment(text="after the erasure"), CTX)  # still works
        assert again.desk.find(incident.id).version == erased.version + 1
    finally:
        again.close()


def test_someone_erased_who_calls_again_starts_afresh(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path))
    try:
        desk, vault = container.desk, container.vault
        log = LogIncident(title="VPN", caller="Dana Scully", impact=2, urgency=2)
        first = desk.create(log, CTX)
        erasures = container.erasures()
        erasures.erase("caller", "Dana Scully", "asked", "consent_withdrawn", CTX)
        second = desk.create(log, CTX)
        assert desk.find(second.id).caller == "Dana Scully"  # a new subject, a new key
        assert vault.subject_of(str(second.id)) != vault.subject_of(str(first.id))
        assert erasures.report("caller", "Dana Scully")["aggregates"] == [str(second.id)]
    finally:
        container.close()


def test_a_ticket_imported_from_another_tool_holds_its_caller_in_its_incident_only(tmp_path):
    """The mirrored ticket remembers the fields the next comparison needs, not its caller or
    text: those go to the incident, sealed like any other."""
    from application.inbound.inbound_processor import InboundProcessor
    from infra.messaging.cloudevents import cloudevent, parse
    from tests.unit.test_inbound_source_records import snap

    container = bootstrap(Settings(data_dir=tmp_path))
    try:
        data = snap(1, caller="Dana Scully", title="Dana cannot print")
        message = cloudevent("incident.snapshot", "servicenow://acme", "e-1", data["ref"], data)
        (outcome,) = InboundProcessor(container.desk, parse=parse).process_batch([message])
        assert outcome.status == "applied"
        with sqlite3.connect(tmp_path / "events.db") as db:
            states = [bytes(s) for (s,) in db.execute("SELECT state FROM stored_events")]
        assert all(b"Dana" not in state for state in states)
        # The other tool's people (who updated it, who had it) are person tokens too.
        assert all(b"user 1" not in state and b"opener" not in state for state in states)
        held = container.erasures().report("caller", "Dana Scully")["aggregates"]
        assert held == [outcome.incident_id]
    finally:
        container.close()


def test_the_people_an_improvement_names_are_sealed_and_a_team_is_not(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path, snapshot_interval=2))
    try:
        desk = container.desk
        design = {
            "name": "Faster triage",
            "area": "process",
            "owner": "Carol Danvers",
            "team": ["Bob Lee"],
        }
        improvement = desk.create(ProposeImprovement(design=design), CTX)
        desk.execute(improvement.id, AcceptImprovement(), CTX)
        plan = {
            "actions": [{"id": "a1", "title": "Rota", "owner": "Bob Lee", "due": "2026-05-01"}],
            "raci": [
                {"party": "Carol Danvers", "kind": "person", "role": "accountable"},
                {"party": "Network team", "kind": "team", "role": "consulted"},
            ],
        }
        desk.execute(improvement.id, RevisePlan(plan=plan), CTX)
        stored = _stored_states(tmp_path)
        assert stored["snapshots"]  # the improvement's state is in a snapshot too
        everything = b"".join(stored["events"] + stored["snapshots"])
        assert b"Carol" not in everything and b"Bob Lee" not in everything
        assert b"Network team" in everything  # a team is nobody's personal data

        fresh = desk.find(improvement.id)  # from its snapshot and the events after it
        assert fresh.design["owner"] == "Carol Danvers" and fresh.design["team"] == ["Bob Lee"]
        assert [r["party"] for r in fresh.plan["raci"]] == ["Carol Danvers", "Network team"]
        assert fresh.plan["actions"][0]["owner"] == "Bob Lee"
    finally:
        container.close()


def test_an_api_key_s_name_is_sealed_in_its_events_its_lookup_and_the_access_log(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path))
    try:
        key = container.keys.issue("Dana Scully", "agent", CTX)
        container.access_log.record(
            Access("Dana Scully", "agent", "read_detail", "incident", "i-1", "req-1", "")
        )
        stored = _stored_states(tmp_path)
        assert b"Dana" not in b"".join(stored["events"] + stored["names"] + stored["accesses"])
        assert container.keys.get(key.key.id).name == "Dana Scully"
        assert container.keys.get("Dana Scully").id == key.key.id  # found by its name
        (access,) = container.access_log.search({"key_name": "Dana Scully"}, 0, 10)
        assert access["key_name"] == "Dana Scully"

        subject = container.vault.person_token("Dana Scully").removeprefix("pid:1:")
        container.vault.erase(subject, "dpo", "asked", "consent_withdrawn")
        (access,) = container.access_log.search({}, 0, 10)
        assert access["key_name"] == "[erased]"
    finally:
        container.close()


def _stored_states(data_dir) -> dict[str, list[bytes]]:
    with sqlite3.connect(data_dir / "events.db") as db:
        return {
            "events": [bytes(s) for (s,) in db.execute("SELECT state FROM stored_events")],
            "snapshots": [bytes(s) for (s,) in db.execute("SELECT state FROM stored_snapshots")],
            "names": [n.encode() for (n,) in db.execute("SELECT name FROM itsm_api_key_names")],
            "accesses": [k.encode() for (k,) in db.execute("SELECT key_name FROM itsm_access_log")],
        }
