"""A real ServiceDesk on SQLite in tmp_path, with the in-process feed (not started)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.composition_root import Container, bootstrap
from infra.settings import Settings


@pytest.fixture
def container(tmp_path) -> Iterator[Container]:
    c = bootstrap(Settings(data_dir=tmp_path))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def desk(container):
    return container.desk
