"""`itsm improvements ...`: the review reminder scheduler (docs/improvements.md)."""

from __future__ import annotations

import argparse
import json

from infra.cli.process import Commands


def reminders(args: argparse.Namespace) -> int:
    """Record review reminders when review dates pass unverified; for deployments with Kafka
    (with the embedded default, `itsm serve` runs it itself). `--once`: one pass, then exit
    (for a cron job)."""
    from infra.cli.process import open_container, stop_on_signals

    container = open_container()
    try:
        scheduler = container.review_reminders()
        if args.poll is not None:
            scheduler.poll_interval = args.poll
        if args.once:
            done = scheduler.run_pass()
            print(json.dumps({"reminded": done.reminded, "refused": done.refused}))
        else:
            scheduler.run(stop_on_signals())
    finally:
        container.close()
    return 0


def register(commands: Commands) -> None:
    """Add the improvements subcommands to the `itsm` parser."""
    improvements = commands.add_parser(
        "improvements", help="continual improvement: review reminders"
    ).add_subparsers(dest="improvements_command", required=True)
    p = improvements.add_parser(
        "reminders", help="record a reminder when an improvement's review date passes unverified"
    )
    p.add_argument("--poll", type=float, help="seconds between passes (default 60)")
    p.add_argument("--once", action="store_true", help="one pass, print what it did, exit")
    p.set_defaults(run=reminders)
