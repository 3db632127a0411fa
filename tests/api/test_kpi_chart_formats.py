"""GET /v1/kpis/chart: SVG by default, PNG with format=png; group names are only text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from application.access import Role
from tests.api.test_kpis_api import RANGE, worked  # noqa: F401  (a fixture)

SVG = "{http://www.w3.org/2000/svg}"


def chart(client, auth, **params):
    query = {**RANGE, "kpi": "opened", "period": "day", "group_by": "service", **params}
    return client.get("/v1/kpis/chart", params=query, headers=auth(Role.ANALYST))


def test_format_png_is_a_png_image(client, auth, worked):  # noqa: F811
    response = chart(client, auth, format="png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_format_svg_is_the_default(client, auth, worked):  # noqa: F811
    default, asked = chart(client, auth), chart(client, auth, format="svg")
    assert default.headers["content-type"].startswith("image/svg+xml")
    assert asked.headers["content-type"] == default.headers["content-type"]
    ET.fromstring(asked.content)


def test_an_unknown_format_is_a_422_problem(client, auth):
    response = chart(client, auth, format="gif")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_markup_in_a_group_name_is_text_in_the_svg(client, auth, log_incident, container):
    log_incident(service="<script>x()</script>")
    container.feed.catch_up()
    svg = ET.fromstring(chart(client, auth).content)
    assert not list(svg.iter(f"{SVG}script"))
    assert "<script>x()</script>" in {t.text for t in svg.iter(f"{SVG}text")}


def test_the_openapi_description_documents_both_formats(client, auth):
    operation = client.get("/openapi.json").json()["paths"]["/v1/kpis/chart"]["get"]
    (format_,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert format_["schema"]["enum"] == ["svg", "png"] and "png" in format_["description"]
    assert set(operation["responses"]["200"]["content"]) >= {"image/svg+xml", "image/png"}
    assert "format=png" in operation["description"]
