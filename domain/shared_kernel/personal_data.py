"""Which fields of an aggregate's events are a person's data, and whose.

A practice declares it; the event store encrypts those fields with the data subject's own
key as it records them, so that erasing the subject (deleting the key) leaves the history,
its hashes and every structural field (states, times, groups, priorities) intact
(docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PersonalData:
    """`subject_field`: the field of the creating event naming the data subject (an
    incident's caller; empty: the aggregate holds only people's names); `events`: per event
    class name, its fields that are personal data (the subject's name, free text about
    them); `snapshot`: the aggregate's attributes that are, in its snapshots. Whoever acted
    (a person's `by`) is sealed in every event."""

    subject_field: str
    events: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    snapshot: tuple[str, ...] = ()
    # Fields naming another person (an agent): recorded as that person's own token, the same
    # wherever they appear, so that filters and groupings by person still work.
    people: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    snapshot_people: tuple[str, ...] = ()


ERASED = "[erased]"  # what a field reads as once its subject's key is gone
