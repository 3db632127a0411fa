"""The README's HTTP API section names every route, every query parameter and every value
of an enumeration that the OpenAPI document has: a new filter or value lands there too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app import create_app

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def section() -> str:
    text = README.read_text()
    return text[text.index("## HTTP API") : text.index("## Configuration")]


@pytest.fixture
def spec(container) -> dict:
    return create_app(container).openapi()


def quoted(section: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", section))


def test_every_route_is_in_the_table(section, spec):
    words = quoted(section)
    for path, operations in spec["paths"].items():
        generic = re.sub(r"\{[^}]+\}", "{id}", path)
        for method in operations:
            named = f"{method.upper()} {generic}" in section or (
                f"{method.upper()} {generic.rsplit('/', 1)[0]}/" in section
                and generic.rsplit("/", 1)[1] in words | {w.lstrip("/") for w in words}
            )
            assert named, f"{method.upper()} {path} is not in the README's route table"


def test_every_query_parameter_is_named(section, spec):
    words = quoted(section)
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert parameter["name"] in words, (path, parameter["name"])


def test_every_enumerated_value_is_named(section, spec):
    words = quoted(section)
    enums = [s["enum"] for s in spec["components"]["schemas"].values() if "enum" in s]
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                enums += re.findall(r"'enum': \[([^\]]*)\]", str(parameter["schema"]))
                kpis = parameter["schema"].get("description", "")
                if parameter["name"] == "kpi":
                    enums.append(kpis.removeprefix("One of: ").split(", "))
    values = {v.strip("' ") for e in enums for v in (e.split(",") if isinstance(e, str) else e)}
    assert values and not values - words, values - words
