"""GET /v1/audit/events/{id}/proof: one event proved to be in the signed log, checked with
the auditor's module alone (infra/audit/proof.py), and forged proofs refused by it."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.access import Role
from infra.audit.checkpoints import Checkpointer
from infra.audit.proof import Checkpoint, proven_event_problems, signature_valid

KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def resolved(container, log_incident, act) -> dict:
    """An incident's Resolved event, the decision to prove, with its audit trail caught up."""
    incident = log_incident()
    for action, body in (("assign", {"group": "desk"}), ("resolve", {"code": "fixed"})):
        assert act(incident["id"], action, body).status_code == 200
    container.feed.catch_up()
    return incident


def _event_id(client, auth, incident: dict, event: str) -> str:
    trail = client.get(
        f"/v1/audit/aggregates/{incident['id']}/events", headers=auth(Role.AUDITOR)
    ).json()
    return next(e["event_id"] for e in trail if e["event"] == event)


def _proof(client, auth, event_id: str):
    return client.get(f"/v1/audit/events/{event_id}/proof", headers=auth(Role.AUDITOR))


def test_a_signed_event_s_proof_verifies_with_the_public_key_alone(
    container, client, auth, resolved
):
    Checkpointer(container.store_db, KEY).take()
    response = _proof(client, auth, _event_id(client, auth, resolved, "Resolved"))
    assert response.status_code == 200, response.text
    proof = response.json()
    checkpoint = Checkpoint.from_dict(proof["checkpoint"])
    assert signature_valid(checkpoint, KEY.public_key())
    assert proven_event_problems(proof["event"], checkpoint) == []
    assert proof["event"]["readable"]["code"] == "fixed"
    assert proof["event"]["readable"]["by"]["$actor"][0].startswith("pid:1:")  # as stored
    assert response.headers["x-personal-data"] == "sealed"
    assert proof["event"]["aggregate_id"] == resolved["id"]


def test_a_forged_proof_is_refused(container, client, auth, resolved):
    Checkpointer(container.store_db, KEY).take()
    proof = _proof(client, auth, _event_id(client, auth, resolved, "Resolved")).json()
    checkpoint = Checkpoint.from_dict(proof["checkpoint"])
    event = proof["event"]
    forged_state = {**event, "readable": {**event["readable"], "code": "workaround"}}
    assert proven_event_problems(forged_state, checkpoint)
    state = base64.b64decode(event["state"]).replace(b"fixed", b"wrkrnd")
    rewritten = {**event, "state": base64.b64encode(state).decode(), "readable": None}
    assert proven_event_problems({**rewritten, "readable": json.loads(state)}, checkpoint)
    other = _proof(client, auth, _event_id(client, auth, resolved, "Assigned")).json()["event"]
    assert proven_event_problems({**other, "path": event["path"]}, checkpoint)
    assert proven_event_problems({**event, "path": [("00" * 32)] * len(event["path"])}, checkpoint)
    assert proven_event_problems({**event, "tree_size": event["tree_size"] + 1}, checkpoint)
    forged_root = Checkpoint(**{**checkpoint.__dict__, "root": bytes(32)})
    assert not signature_valid(forged_root, KEY.public_key())


def test_an_event_not_signed_yet_is_a_409(client, auth, resolved):
    response = _proof(client, auth, _event_id(client, auth, resolved, "Resolved"))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "not-yet-signed" in response.json()["type"]


def test_an_unknown_event_is_a_404_and_agents_may_not_ask(client, auth, resolved):
    unknown = "00000000-0000-5000-8000-000000000000"
    assert _proof(client, auth, unknown).status_code == 404
    response = client.get(f"/v1/audit/events/{unknown}/proof", headers=auth(Role.AGENT))
    assert response.status_code == 403
