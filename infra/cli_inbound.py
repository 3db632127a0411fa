"""`itsm inbound` and `itsm import servicenow PATH` (issue 4)."""
from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the inbound and import subcommands to the `itsm` parser."""
