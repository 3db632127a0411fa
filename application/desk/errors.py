"""What the write path refuses besides the domain's own rules."""

from __future__ import annotations

from domain.shared_kernel.errors import DomainError


class IncidentNotFound(DomainError):
    pass


class VersionConflict(DomainError):
    """The incident changed since the version the caller saw."""
