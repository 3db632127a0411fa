"""`itsm sla ...`: SLA scheduler and what-if simulations (docs/sla.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.cli.process import Commands


def scheduler(args: argparse.Namespace) -> int:
    """Record SLA warnings and breaches when due; for deployments with Kafka (with the
    embedded default, `itsm serve` runs one itself)."""
    from infra.cli.process import open_container, stop_on_signals

    container = open_container()
    try:
        sla = container.sla_scheduler()
        if args.poll is not None:
            sla.poll_interval = args.poll
        sla.run(stop_on_signals())
    finally:
        container.close()
    return 0


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a timezone, e.g. 2026-05-01T00:00Z")
    return moment


def simulate(args: argparse.Namespace) -> int:
    from domain.shared_kernel.errors import DomainError
    from infra.cli.process import open_container

    draft = _draft(args.draft)
    container = open_container()
    try:
        result = container.what_if.simulate(draft, args.start, args.end)
    except (DomainError, ValueError) as error:
        sys.exit(str(error))
    finally:
        container.close()
    print(json.dumps(result, indent=2))
    return 0


def _draft(path: str) -> dict[str, Any]:
    """The draft policy of a JSON file (a policy create body), or exit saying why not."""
    from pydantic import ValidationError

    from application.sla.policy_document import draft_spec

    try:
        return draft_spec(json.loads(Path(path).read_text()))
    except (OSError, ValueError, ValidationError) as error:
        sys.exit(f"cannot read the draft policy {path}: {error}")


def register(commands: Commands) -> None:
    """Add the sla subcommands to the `itsm` parser."""
    sla = commands.add_parser("sla", help="SLA scheduler and simulations").add_subparsers(
        dest="sla_command", required=True
    )
    p = sla.add_parser("scheduler", help="record SLA warnings and breaches when they fall due")
    p.add_argument("--poll", type=float, help="seconds between looks at changed clocks")
    p.set_defaults(run=scheduler)
    p = sla.add_parser("simulate", help="replay a period against a draft policy (what-if)")
    p.add_argument("--draft", required=True, help="JSON file: a policy create body")
    p.add_argument(
        "--from", dest="start", required=True, type=_moment, help="ISO-8601 instant with an offset"
    )
    p.add_argument("--to", dest="end", required=True, type=_moment)
    p.set_defaults(run=simulate)
