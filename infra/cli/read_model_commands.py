"""`itsm projections rebuild|failures|retry`: the read models."""

from __future__ import annotations

import argparse
import sys

from infra.cli.process import Commands, open_container


def projections_rebuild(args: argparse.Namespace) -> int:
    from infra.operations.read_model_rebuild import rebuild

    replayed = rebuild(open_container(), args.name)
    print(f"rebuilt {args.name} from {replayed} events", file=sys.stderr)
    return 0


def projections_failures(args: argparse.Namespace) -> int:
    container = open_container()
    runners = [container.runner(args.name)] if args.name else container.runners
    found = [q for runner in runners for q in runner.quarantined()]
    for q in found:
        print(
            f"{q.projection}\t{q.aggregate_id}\tversion {q.version}\t{q.event_type}\t"
            f"{q.quarantined_at}\t{q.waiting} waiting\t{q.error}"
        )
    print(f"{len(found)} quarantined aggregate(s)", file=sys.stderr)
    return 1 if found else 0


def projections_retry(args: argparse.Namespace) -> int:
    container = open_container()
    runners = [container.runner(args.name)] if args.name else container.runners
    still = 0
    for runner in runners:
        released, failing = runner.retry(args.aggregate)
        still += failing
        print(
            f"{runner.projection.name}: {released} released, {failing} still quarantined",
            file=sys.stderr,
        )
    return 1 if still else 0


def register(commands: Commands) -> None:
    projections = commands.add_parser("projections").add_subparsers(
        dest="projections_command", required=True
    )
    p = projections.add_parser("rebuild", help="empty one read model and replay it")
    p.add_argument("name")
    p.set_defaults(run=projections_rebuild)
    p = projections.add_parser("failures", help="list quarantined aggregates (exit 1 if any)")
    p.add_argument("name", nargs="?", help="only this read model")
    p.set_defaults(run=projections_failures)
    p = projections.add_parser("retry", help="fold quarantined events again after a fix")
    p.add_argument("name", nargs="?", help="only this read model")
    p.add_argument("--aggregate", help="only this aggregate id")
    p.set_defaults(run=projections_retry)
