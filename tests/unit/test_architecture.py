"""domain/ imports the standard library, eventsourcing.domain and itself: nothing else.

import-linter (pyproject.toml) holds every other layer rule; it cannot tell
eventsourcing.domain from eventsourcing.persistence, so this one is checked here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED = {"eventsourcing.domain"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top in ("domain", "__future__") or module in ALLOWED


def test_the_domain_imports_only_the_standard_library_and_eventsourcing_domain():
    strays = {
        f"{path.relative_to(DOMAIN.parent)}: {module}"
        for path in DOMAIN.rglob("*.py")
        for module in _imports(path)
        if not _allowed(module)
    }
    assert not strays, sorted(strays)
