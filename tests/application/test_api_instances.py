"""Two API instances (two ServiceDesks) on one event store: each starts a command from the
incident as it last saved it, and the store's versions keep them honest."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from application.desk.errors import NotFound, VersionConflict
from domain.incident.commands import Acknowledge, Assign, Comment, Reopen, Resolve
from infra.composition_root import bootstrap
from infra.settings import Settings
from tests.builders import ctx, log_command


@pytest.fixture
def other(tmp_path):
    """A second instance on the same store, as another process would be."""
    c = bootstrap(Settings(data_dir=tmp_path))
    try:
        yield c.desk
    finally:
        c.close()


def test_a_command_on_an_incident_another_instance_changed_lands_on_top(desk, other):
    incident = desk.create(log_command(), ctx())
    other.execute(incident.id, Assign(group="network"), ctx())  # version 2, elsewhere
    done = desk.execute(incident.id, Comment(text="behind, then retried"), ctx())
    assert done.version == 3 and done.assignment_group == "network"
    assert [type(e).__name__ for e in desk.events.get(incident.id)] == [
        "Logged",
        "Assigned",
        "Commented",
    ]


def test_if_match_is_judged_on_the_store_not_on_what_this_instance_saw(desk, other):
    incident = desk.create(log_command(), ctx())
    other.execute(incident.id, Assign(group="network"), ctx())
    # The client read version 2 (from the other instance); this one last saw 1.
    assert desk.execute(incident.id, Acknowledge(), ctx(expected_version=2)).version == 3
    with pytest.raises(VersionConflict, match="is at version 3, not 1"):
        desk.execute(incident.id, Comment(text="stale"), ctx(expected_version=1))


def test_a_transition_legal_only_after_another_instances_change_is_accepted(desk, other):
    incident = desk.create(log_command(), ctx())
    desk.execute(incident.id, Acknowledge(), ctx())
    other.execute(incident.id, Resolve(code="fixed", notes="done"), ctx())
    # This instance last saw it in progress, where a reopen is illegal; the store says
    # resolved, where it is legal.
    assert desk.execute(incident.id, Reopen(reason="still broken"), ctx()).state == "in_progress"


def test_the_event_loop_path_behaves_as_the_threaded_one(desk, other):
    incident = desk.create(log_command(), ctx())
    done = asyncio.run(desk.execute_async(incident.id, Comment(text="from the loop"), ctx()))
    assert done.version == 2
    other.execute(incident.id, Assign(group="network"), ctx())  # version 3, elsewhere
    done = asyncio.run(desk.execute_async(incident.id, Acknowledge(), ctx(expected_version=3)))
    assert (done.version, done.state, done.assignment_group) == (4, "in_progress", "network")
    with pytest.raises(VersionConflict, match="is at version 4, not 2"):
        asyncio.run(desk.execute_async(incident.id, Comment(text="stale"), ctx(expected_version=2)))
    with pytest.raises(NotFound):
        asyncio.run(desk.execute_async(uuid4(), Comment(text="nobody"), ctx()))
    assert [type(e).__name__ for e in desk.events.get(incident.id)] == [
        "Logged",
        "Commented",
        "Assigned",
        "Acknowledged",
    ]
