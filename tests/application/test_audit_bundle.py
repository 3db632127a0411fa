"""`itsm audit export` and `verify-bundle`: a bundle verified offline by infra/audit/proof.py
alone (copied elsewhere, run in isolated mode), and every forgery of it refused."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.incident.commands import Assign, Comment, LogIncident, Resolve
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.checkpoints import generate_key
from infra.audit.proof import Checkpoint, key_id, public_pem, sign
from infra.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exported(tmp_path, monkeypatch, container, capsys) -> tuple[Path, str, Path]:
    """A bundle of one incident's events (and the trusted public key)."""
    key = tmp_path / "keys" / "audit.pem"
    public = generate_key(key)
    monkeypatch.setenv("ITSM_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("ITSM_AUDIT_SIGNING_KEY", str(key))
    ctx = Context(Actor("erin"), "bundle-test")
    incident = container.desk.create(
        LogIncident(title="VPN down", caller="dana", impact=1, urgency=2), ctx
    )
    for command in (Assign(group="network"), Comment(text="MTU"), Resolve(code="config")):
        container.desk.execute(incident.id, command, ctx)
    container.feed.catch_up()
    out = tmp_path / "bundle"
    assert main(["audit", "export", "--aggregate", str(incident.id), "--out", str(out)]) == 0
    capsys.readouterr()
    return out, str(incident.id), public


def _check(bundle: Path, capsys, *trusted: Path) -> tuple[int, str]:
    status = main(["audit", "verify-bundle", str(bundle), *(f"--public-key={t}" for t in trusted)])
    return status, capsys.readouterr().out


def _events(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "events.jsonl").read_text().splitlines()]


def _rewrite(bundle: Path, name: str, rows: list[dict]) -> None:
    (bundle / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_an_exported_aggregate_verifies_offline_with_the_trusted_key(exported, capsys):
    bundle, incident_id, public = exported
    status, out = _check(bundle, capsys, public)
    assert status == 0, out
    assert "signed by the trusted key" in out
    events = _events(bundle)
    assert [e["version"] for e in events] == [1, 2, 3, 4]
    assert {e["aggregate_id"] for e in events} == {incident_id}


def test_the_verifier_needs_nothing_of_the_project(exported, tmp_path):
    """The auditor's copy of proof.py, run where nothing of the project can be imported."""
    bundle, _, public = exported
    alone = tmp_path / "auditor"
    alone.mkdir()
    shutil.copy(ROOT / "infra" / "audit" / "proof.py", alone / "proof.py")
    run = subprocess.run(
        [sys.executable, "-I", "proof.py", str(bundle), str(public)],
        cwd=alone,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the bundle verifies" in run.stdout


def test_an_export_by_actor_and_time_verifies(tmp_path, exported, capsys):
    _, incident_id, _ = exported
    bundle = tmp_path / "by-actor"
    assert main(["audit", "export", "--actor", "erin", "--out", str(bundle)]) == 0
    events = _events(bundle)  # the incident's, and the number its logging took
    assert [e["version"] for e in events if e["aggregate_id"] == incident_id] == [1, 2, 3, 4]
    assert len(events) == 5
    status, out = _check(bundle, capsys)
    assert status == 0, out
    later = tmp_path / "later"
    assert main(["audit", "export", "--from", "2999-01-01", "--out", str(later)]) == 0
    assert _events(later) == []


def test_an_altered_event_is_refused(exported, capsys):
    bundle, _, public = exported
    events = _events(bundle)
    state = base64.b64decode(events[3]["state"]).replace(b"config", b"hwfail")
    events[3] = {**events[3], "state": base64.b64encode(state).decode(), "readable": None}
    del events[3]["readable"]
    _rewrite(bundle, "events.jsonl", events)
    status, out = _check(bundle, capsys, public)
    assert status == 1 and "do not give its hash" in out


def test_a_dropped_event_is_refused(exported, capsys):
    bundle, _, public = exported
    events = _events(bundle)
    _rewrite(bundle, "events.jsonl", events[:2] + events[3:])
    (bundle / "manifest.json").write_text(
        json.dumps({**json.loads((bundle / "manifest.json").read_text()), "events": 3})
    )
    status, out = _check(bundle, capsys, public)
    assert status == 1 and "missing" in out


def test_a_forged_merkle_path_is_refused(exported, capsys):
    bundle, _, public = exported
    events = _events(bundle)
    events[1]["path"] = ["11" * 32 for _ in events[1]["path"]] or ["11" * 32]
    _rewrite(bundle, "events.jsonl", events)
    status, out = _check(bundle, capsys, public)
    assert status == 1 and "Merkle path" in out


def test_a_replaced_checkpoint_or_forged_signature_is_refused(exported, capsys):
    bundle, _, public = exported
    original = (bundle / "checkpoints.jsonl").read_text()
    (checkpoint,) = [json.loads(line) for line in original.splitlines()]
    for forged in ({**checkpoint, "root": "00" * 32}, {**checkpoint, "signature": "A" * 88}):
        _rewrite(bundle, "checkpoints.jsonl", [forged])
        status, out = _check(bundle, capsys, public)
        assert status == 1 and "not signed by the bundle's key" in out


def test_a_bundle_re_signed_by_another_key_is_refused_against_the_trusted_one(exported, capsys):
    bundle, _, public = exported
    intruder = Ed25519PrivateKey.generate()
    (line,) = (bundle / "checkpoints.jsonl").read_text().splitlines()
    checkpoint = Checkpoint.from_dict(json.loads(line))
    resigned = sign(
        Checkpoint(**{**checkpoint.__dict__, "key_id": key_id(intruder.public_key())}), intruder
    )
    _rewrite(bundle, "checkpoints.jsonl", [resigned.as_dict()])
    (bundle / "public_key.pem").write_bytes(public_pem(intruder.public_key()))
    status, out = _check(bundle, capsys)
    assert status == 0 and "compare it with the one you trust" in out  # self-consistent
    status, out = _check(bundle, capsys, public)
    assert status == 1 and "is not the trusted key" in out
