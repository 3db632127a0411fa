"""The image, read rather than built (no Docker engine here or on CI): it can reach
PostgreSQL, it does not run as root, and it runs `itsm`."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(arguments.split())))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


def arguments(dockerfile: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in dockerfile if kw == keyword]


def commands(dockerfile: list[tuple[str, str]]) -> list[list[str]]:
    """Each shell command of each RUN (split at &&), as words."""
    return [
        shlex.split(command)
        for run in arguments(dockerfile, "RUN")
        for command in run.split("&&")
        if command.strip()
    ]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_it_is_built_on_python_3_11_slim(dockerfile):
    assert arguments(dockerfile, "FROM")[-1].split()[0] == "python:3.11-slim"


def test_it_installs_the_project(dockerfile):
    installs = [c for c in commands(dockerfile) if c[:2] == ["pip", "install"]]
    assert any("." in c[2:] for c in installs), installs
    copied = {args.split()[0] for args in arguments(dockerfile, "COPY")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in packages["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied
    assert "schemas" in copied  # the inbound JSON Schemas are read from the source tree


def test_its_psycopg_can_reach_postgresql(dockerfile):
    """eventsourcing[postgres] brings psycopg's pure-Python build, which needs the system's
    libpq at run time; python:3.11-slim has none. So the image installs libpq (Debian's
    libpq5) or psycopg's binary package, which carries its own."""
    brought = " ".join(project()["dependencies"])
    assert "eventsourcing[postgres]" in brought
    if re.search(r"psycopg\[[^\]]*binary", brought):
        return  # the project itself brings the binary package
    words = [word for command in commands(dockerfile) for word in command]
    apt = [c for c in commands(dockerfile) if c[:2] == ["apt-get", "install"]]
    assert any("libpq5" in c for c in apt) or any(
        re.match(r"psycopg(\[[^\]]*binary[^\]]*\]|-binary)", word) for word in words
    ), "neither libpq5 nor psycopg[binary] is installed"
    # The build fails if psycopg cannot load libpq.
    assert any("import psycopg" in run for run in arguments(dockerfile, "RUN"))


def test_it_runs_as_a_user_other_than_root(dockerfile):
    users = arguments(dockerfile, "USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(c[0] == "useradd" and user in c for c in commands(dockerfile))
    last_user = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in dockerfile[last_user:]), "a RUN after USER is root's?"


def test_its_entrypoint_is_itsm(dockerfile):
    assert json.loads(arguments(dockerfile, "ENTRYPOINT")[-1]) == ["itsm"]
    assert "itsm" in project()["scripts"]
    assert json.loads(arguments(dockerfile, "CMD")[-1]) == ["serve"]


def test_it_listens_on_all_interfaces_and_keeps_its_data_in_a_volume(dockerfile):
    env = " ".join(arguments(dockerfile, "ENV"))
    assert "ITSM_HOST=0.0.0.0" in env and "ITSM_DATA_DIR=/var/lib/itsm" in env
    assert "/var/lib/itsm" in " ".join(arguments(dockerfile, "VOLUME"))


def test_the_build_context_leaves_local_state_and_secrets_out():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".env", ".git", "secrets"} <= ignored


def test_compose_builds_this_image_and_says_how_to_create_the_first_key():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"build:\s*\n\s+context: \.\s*\n\s+dockerfile: Dockerfile", compose)
    assert "docker compose run --rm api keys create --role admin" in compose
