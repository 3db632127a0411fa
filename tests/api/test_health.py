"""/health/live and /health/ready: the truth about databases, disk and read models."""

from __future__ import annotations

import errno

import pytest

from projections.runtime.runner import ProjectionRunner


@pytest.fixture
def ready(client):
    def check(status: int) -> dict:
        response = client.get("/health/ready")
        assert response.status_code == status, response.text
        return response.json()

    return check


def test_ready_when_every_component_answers_and_the_read_models_are_current(container, ready):
    container.feed.catch_up()
    report = ready(200)
    assert report["status"] == "ok" and report["failing"] == []
    components = report["components"]
    assert {components[n]["status"] for n in ("event_store", "read_database", "data_dir")} == {"ok"}
    assert components["kafka"] == {"status": "embedded"}
    assert set(components["projections"]) == {r.projection.name for r in container.runners}
    for projection in components["projections"].values():
        assert projection["status"] == "ok"
        assert projection["lag"] == 0 and projection["quarantined"] == 0


def test_a_read_model_catching_up_is_degraded_but_ready(container, ready, log_incident):
    container.feed.catch_up()
    log_incident()
    report = ready(200)
    assert report["status"] == "degraded"
    assert report["components"]["projections"]["incidents"]["status"] == "catching_up"
    # The incident's Logged event, and the numbers sequence's start and issued number
    assert report["components"]["projections"]["incidents"]["lag"] == 3


def test_a_stalled_read_model_makes_the_instance_not_ready(client, container, ready, log_incident):
    container.feed.catch_up()
    log_incident()
    readiness = client.app.state.readiness
    now = [1000.0]
    readiness.clock = lambda: now[0]
    ready(200)  # behind, first seen
    now[0] += container.settings.health_stall_seconds + 1
    report = ready(503)
    assert report["components"]["projections"]["incidents"]["status"] == "stalled"
    assert "projection incidents" in report["failing"]
    container.feed.catch_up()
    assert ready(200)["status"] == "ok"


def test_unready_answers_are_problem_documents_with_retry_after(client, container, monkeypatch):
    def broken(**_):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(container.read_db, "transaction", broken)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["status"] == 503 and body["type"] == "urn:itsm:problem:unavailable"
    assert body["components"]["read_database"]["status"] == "unavailable"
    assert body["components"]["event_store"]["status"] == "ok"
    assert body["failing"] == ["read_database"]
    assert client.get("/health/live").status_code == 200  # the process still answers


def test_a_database_that_does_not_answer_fails_readiness_within_the_time_limit(
    client, container, monkeypatch
):
    import threading
    import time

    release = threading.Event()
    monkeypatch.setattr(container.store_db, "ping", lambda: release.wait(30))
    started = time.monotonic()
    response = client.get("/health/ready")
    release.set()
    assert response.status_code == 503
    assert time.monotonic() - started < container.settings.health_timeout + 1.5
    assert "no answer within" in response.json()["components"]["event_store"]["detail"]


def test_a_full_data_directory_fails_readiness(client, monkeypatch):
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert "No space left" in response.json()["components"]["data_dir"]["detail"]


def test_quarantined_aggregates_beyond_the_threshold_make_the_instance_not_ready(
    container, ready, monkeypatch
):
    container.feed.catch_up()
    monkeypatch.setattr(
        ProjectionRunner,
        "quarantine_count",
        lambda self: 1 if self.projection.name == "kpis" else 0,
    )
    report = ready(200)
    assert report["components"]["projections"]["kpis"]["quarantined"] == 1
    monkeypatch.setattr(container.settings, "health_max_quarantined", 0)
    report = ready(503)
    assert report["components"]["projections"]["kpis"]["status"] == "quarantined"


def test_a_database_away_during_a_command_is_503_with_retry_after(
    client, auth, container, monkeypatch
):
    import sqlite3

    def away(*_, **__):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(container.desk.recorder, "insert_events", away)
    response = client.post(
        "/v1/incidents",
        headers=auth(),
        json={"title": "x", "caller": "bob", "impact": 1, "urgency": 1},
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "urn:itsm:problem:unavailable"
