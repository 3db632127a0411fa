"""`itsm serve --workers`: several API processes only where the read models are fed elsewhere."""

import pytest

from infra.cli import main as cli


def test_several_api_processes_without_kafka_are_refused_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.delenv("ITSM_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("ITSM_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        cli.main(["serve", "--workers", "2"])
    assert "one API process only without Kafka" in str(refused.value)
    assert "ITSM_KAFKA_BOOTSTRAP" in str(refused.value)
