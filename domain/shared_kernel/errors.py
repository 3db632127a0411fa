"""Why a command records nothing: the refusals every practice shares."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""


class IllegalTransition(DomainError):
    """The command does not apply to the ticket in its current state."""


class InvalidValue(DomainError):
    """A value is outside what the domain allows."""
