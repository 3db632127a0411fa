"""Published event ids: stable per (aggregate, version), and exactly the documented uuid5."""

from uuid import UUID, uuid4, uuid5

from hypothesis import given
from hypothesis import strategies as st

from infra.event_store.publishing import _EVENT_IDS, event_id


@given(st.uuids(), st.integers(min_value=1, max_value=10**9))
def test_an_event_id_is_the_uuid5_of_aggregate_and_version(aggregate_id, version):
    assert event_id(aggregate_id, version) == str(uuid5(_EVENT_IDS, f"{aggregate_id}/{version}"))


def test_an_event_id_is_a_version_5_uuid_that_republishing_repeats():
    aggregate_id = uuid4()
    first = event_id(aggregate_id, 7)
    assert UUID(first).version == 5
    assert event_id(str(aggregate_id), 7) == first
    assert event_id(aggregate_id, 8) != first
