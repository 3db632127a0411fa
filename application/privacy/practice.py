"""The privacy practice: erasures of data subjects (docs/privacy.md)."""

from __future__ import annotations

from application.desk.practice import Practice
from domain.privacy.erasure import Erasure

PRIVACY = Practice(name="privacy", aggregates=(Erasure,), noun="erasure")
