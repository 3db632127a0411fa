"""What the write path refuses besides the domain's own rules."""

from __future__ import annotations

from domain.shared_kernel.errors import DomainError


class NotFound(DomainError):
    """No aggregate with that id (of the kind asked for)."""


class VersionConflict(DomainError):
    """The aggregate changed since the version the caller saw."""


class ReadModelBehind(Exception):
    """A read model has not folded the log as far as the answer needs: try again shortly."""


class NotYetSigned(Exception):
    """The event is in the log, but no audit checkpoint has signed it yet: ask again after
    the next one."""
