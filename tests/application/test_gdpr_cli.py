"""`itsm gdpr`: report what is held about a caller, erase them by the pseudonym the report
gives, and the report then says so (infra/cli/gdpr_commands.py)."""

from __future__ import annotations

import json

from domain.incident.commands import LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.cli.main import main


def test_report_then_erase_by_subject(container, monkeypatch, capsys):
    monkeypatch.setenv("ITSM_DATA_DIR", str(container.settings.data_dir))
    incident = container.desk.create(
        LogIncident(title="Mail", caller="Dana Scully", impact=2, urgency=2),
        Context(Actor("erin"), "cli-test"),
    )
    assert main(["gdpr", "report", "--caller", "Dana Scully"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert held["aggregates"] == [str(incident.id)] and held["has_key"]
    assert held["data"][0]["title"] == "Mail" and held["data"][0]["caller"] == "Dana Scully"
    erase = ["gdpr", "erase", "--subject", held["subject"], "--reason", "asked"]
    assert main([*erase, "--legal-basis", "consent_withdrawn", "--by", "dpo"]) == 0
    assert json.loads(capsys.readouterr().out)["subject"] == held["subject"]
    assert main(["gdpr", "report", "--subject", held["subject"]]) == 0
    after = json.loads(capsys.readouterr().out)
    assert not after["has_key"] and after["erased_by"] == "dpo"
    assert after["legal_basis"] == "consent_withdrawn"
