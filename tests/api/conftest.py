"""A real service desk on SQLite in tmp_path, the in-process feed driven by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import Role
from infra.composition_root import Container, bootstrap
from infra.settings import Settings


@pytest.fixture
def container(tmp_path) -> Iterator[Container]:
    container = bootstrap(Settings(data_dir=tmp_path))
    yield container
    container.close()


@pytest.fixture
def client(container) -> TestClient:
    # Not entered as a context manager: the lifespan would start the background feed, and
    # tests call container.feed.catch_up() to read the read models deterministically.
    return TestClient(create_app(container), raise_server_exceptions=False)


@pytest.fixture
def keys(container) -> dict[Role, str]:
    return {role: container.keys.create(role, f"{role}-user") for role in Role}


@pytest.fixture
def auth(keys) -> Callable[..., dict[str, str]]:
    def headers(role: Role | str = Role.AGENT, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[Role(role)]}", **extra}

    return headers


NEW_INCIDENT = {
    "title": "E-mail unavailable",
    "description": "Outlook cannot connect",
    "caller": "bob",
    "channel": "phone",
    "service": "email",
    "category": "software",
    "subcategory": "mail client",
    "impact": 2,
    "urgency": 2,
}


@pytest.fixture
def log_incident(client, auth) -> Callable[..., dict]:
    def log(**overrides) -> dict:
        response = client.post(
            "/v1/incidents", json={**NEW_INCIDENT, **overrides}, headers=auth(Role.AGENT)
        )
        assert response.status_code == 201, response.text
        return response.json()

    return log


@pytest.fixture
def act(client, auth) -> Callable[..., object]:
    def run(
        incident_id: str,
        action: str,
        body: dict | None = None,
        role: Role = Role.AGENT,
        headers: dict[str, str] | None = None,
    ):
        return client.post(
            f"/v1/incidents/{incident_id}/{action}",
            json=body,
            headers={**auth(role), **(headers or {})},
        )

    return run
