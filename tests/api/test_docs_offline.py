"""/docs, /redoc and /openapi.json work without the internet (their scripts are served by the
API itself, from a package), and ITSM_API_DOCS says who may read them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api import problem_details as errors
from api.app import create_app
from api.operations import docs_routes, health_routes
from api.sla import sla_routes
from application.access import Role
from infra.composition_root import Container, bootstrap
from infra.settings import Settings

PAGES = ("/openapi.json", "/docs", "/redoc")
ASSET_TYPES = {
    "swagger-ui-bundle.js": "javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "javascript",
    "favicon.png": "image/png",
}


@pytest.fixture
def containers(tmp_path) -> Iterator[Callable[[str], Container]]:
    built: list[Container] = []

    def build(mode: str) -> Container:
        built.append(bootstrap(Settings(data_dir=tmp_path / mode, api_docs=mode)))
        return built[-1]

    yield build
    for container in built:
        container.close()


def docs_app(container: Container, root_path: str = "") -> TestClient:
    """The app as api/app.py builds it: FastAPI's own documentation routes off, these on."""
    app = FastAPI(title="ITSM service desk", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.container = container
    errors.install(app)
    app.include_router(health_routes.router)
    app.include_router(sla_routes.router)
    app.include_router(docs_routes.router)
    return TestClient(app, root_path=root_path, raise_server_exceptions=False)


def linked(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_the_pages_link_only_assets_the_api_serves_itself(containers):
    client = docs_app(containers("public"))
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "http://" not in response.text and "https://" not in response.text  # no CDN
        assets = linked(response.text)
        assert assets and all(url.startswith("/docs/assets/") for url in assets)
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert ASSET_TYPES[url.rsplit("/", 1)[1]] in asset.headers["content-type"]
            assert len(asset.content) > 500
    assert "url: '/openapi.json'" in client.get("/docs").text
    assert 'spec-url="/openapi.json"' in client.get("/redoc").text


def test_swagger_ui_and_redoc_get_their_whole_bundles(containers):
    client = docs_app(containers("public"))
    assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").content
    assert b"Redoc" in client.get("/docs/assets/redoc.standalone.js").content
    assert b".swagger-ui" in client.get("/docs/assets/swagger-ui.css").content


def test_an_asset_is_cached_and_revalidated(containers):
    client = docs_app(containers("public"))
    first = client.get("/docs/assets/swagger-ui.css")
    assert "max-age" in first.headers["cache-control"]
    again = client.get(
        "/docs/assets/swagger-ui.css", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "name", ["index.html", "..%2Fcore.py", "%2E%2E%2F__init__.py", "swagger-ui.css.map"]
)
def test_nothing_but_the_listed_assets_is_served(containers, name):
    assert docs_app(containers("public")).get(f"/docs/assets/{name}").status_code == 404


def test_the_openapi_document_describes_the_api_but_not_the_documentation(containers):
    response = docs_app(containers("public")).get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/sla/policies" in paths and "/health/live" in paths
    assert not {"/docs", "/redoc", "/openapi.json"} & set(paths)
    assert not any(path.startswith("/docs/") for path in paths)


def test_public_needs_no_key(containers):
    client = docs_app(containers("public"))
    assert [client.get(page).status_code for page in PAGES] == [200, 200, 200]


def test_authenticated_needs_a_valid_key_of_any_role(containers):
    container = containers("authenticated")
    client = docs_app(container)
    for page in PAGES:
        missing = client.get(page)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.headers["content-type"] == "application/problem+json"
        assert client.get(page, headers={"Authorization": "Bearer itsm_unknown"}).status_code == 401
    for role in (Role.INTEGRATION, Role.AUDITOR, Role.ADMIN):
        key = {"Authorization": f"Bearer {container.keys.create(role, f'{role}-reader')}"}
        assert [client.get(page, headers=key).status_code for page in PAGES] == [200, 200, 200]
    # The assets are the public Swagger UI and ReDoc bundles: a browser loads them keyless.
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_off_answers_404_for_the_pages_the_document_and_the_assets(containers):
    container = containers("off")
    client = docs_app(container)
    key = {"Authorization": f"Bearer {container.keys.create(Role.ADMIN, 'root')}"}
    for url in (*PAGES, "/docs/assets/swagger-ui-bundle.js"):
        assert client.get(url).status_code == 404
        assert client.get(url, headers=key).status_code == 404
    assert client.get("/health/live").status_code == 200


def test_behind_a_path_prefix_the_pages_link_under_it(containers):
    client = docs_app(containers("public"), root_path="/itsm")
    swagger = client.get("/docs").text
    assert "url: '/itsm/openapi.json'" in swagger
    assert all(url.startswith("/itsm/docs/assets/") for url in linked(swagger))
    assert 'spec-url="/itsm/openapi.json"' in client.get("/redoc").text
    assert client.get("/openapi.json").json()["servers"][0] == {"url": "/itsm"}


def test_the_setting_comes_from_the_environment_and_takes_three_values(monkeypatch):
    assert Settings().api_docs == "public"
    monkeypatch.setenv("ITSM_API_DOCS", "authenticated")
    assert Settings().api_docs == "authenticated"
    monkeypatch.setenv("ITSM_API_DOCS", "private")
    with pytest.raises(ValidationError):
        Settings()


def test_the_service_desk_app_serves_its_documentation_offline(containers):
    """api/app.py wires the router in (FastAPI's own documentation routes off)."""
    client = TestClient(create_app(containers("authenticated")), raise_server_exceptions=False)
    assert [client.get(page).status_code for page in PAGES] == [401, 401, 401]
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
