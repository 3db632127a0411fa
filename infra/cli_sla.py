"""`itsm sla ...`: SLA scheduler and what-if simulations (issue 3)."""
from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the sla subcommands to the `itsm` parser."""
