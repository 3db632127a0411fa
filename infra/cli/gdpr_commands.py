"""`itsm gdpr ...`: erase a data subject, or report what is held about them
(docs/privacy.md)."""

from __future__ import annotations

import argparse
import json
import sys

from infra.cli.process import Commands


def erase(args: argparse.Namespace) -> int:
    """Record the erasure (who, when, why, legal basis), then delete the subject's key."""
    from application.desk.errors import NotFound
    from domain.shared_kernel.actor import Actor, ActorKind
    from domain.shared_kernel.command_context import Context
    from infra.cli.process import open_container

    container = open_container()
    try:
        ctx = Context(Actor(args.by, ActorKind.PERSON), "itsm-gdpr-erase")
        try:
            erasures, reason, basis = container.erasures(), args.reason, args.legal_basis
            if args.subject:
                done = erasures.erase_subject(args.subject, reason, basis, ctx)
            else:
                done = erasures.erase(*_named(args), reason, basis, ctx)
        except NotFound as error:
            sys.exit(str(error))
    finally:
        container.close()
    print(
        json.dumps(
            {"subject": done.subject, "aggregates": done.aggregates, "already": done.already}
        )
    )
    return 0


def report(args: argparse.Namespace) -> int:
    """The subject, its key's state, and the personal data held in each of its aggregates
    (as the desk reads them: in clear while the key exists)."""
    from application.desk.errors import NotFound
    from infra.cli.process import open_container

    container = open_container()
    try:
        try:
            erasures = container.erasures()
            held = (
                erasures.report_subject(args.subject)
                if args.subject
                else erasures.report(*_named(args))
            )
        except NotFound as error:
            sys.exit(str(error))
        held["data"] = [_held_in(container, a) for a in held["aggregates"]]
    finally:
        container.close()
    print(json.dumps(held, indent=2, default=str))
    return 0


def _named(args: argparse.Namespace) -> tuple[str, str]:
    return ("caller", args.caller) if args.caller else ("person", args.person)


def _held_in(container, aggregate_id: str) -> dict[str, object]:
    from uuid import UUID

    aggregate = container.desk.find(UUID(aggregate_id))
    if aggregate is None:
        return {"id": aggregate_id}
    fields = ("number", "title", "description", "caller", "resolution_notes")
    return {"id": aggregate_id, **{f: getattr(aggregate, f, None) for f in fields}}


def retention(args: argparse.Namespace) -> int:
    """Erase the people whose tickets all ended more than --days ago: one pass (--once), or
    a pass every --poll seconds until stopped. Each erasure is recorded (SubjectErased, by
    the `retention` automation)."""
    from infra.cli.process import open_container, stop_on_signals

    container = open_container()
    try:
        job = container.retention()
        if args.once:
            print(json.dumps({"erased": job.run_pass(args.days)}))
            return 0
        stop = stop_on_signals()
        while True:
            job.run_pass(args.days)
            if stop.wait(args.poll):
                return 0
    finally:
        container.close()


def register(commands: Commands) -> None:
    """Add the gdpr subcommands to the `itsm` parser."""
    from domain.privacy.erasure import LEGAL_BASES

    gdpr = commands.add_parser(
        "gdpr", help="data subjects: erasure and right of access"
    ).add_subparsers(dest="gdpr_command", required=True)
    p = gdpr.add_parser("erase", help="erase a data subject (their key is deleted)")
    _person(p)
    p.add_argument("--reason", required=True)
    p.add_argument("--legal-basis", required=True, choices=LEGAL_BASES)
    p.add_argument("--by", required=True, help="who asks (recorded with the erasure)")
    p.set_defaults(run=erase)
    p = gdpr.add_parser("report", help="what is held about a data subject")
    _person(p)
    p.set_defaults(run=report)
    p = gdpr.add_parser("retention", help="erase people whose tickets all ended long ago")
    p.add_argument("--days", type=int, required=True, help="the retention period")
    p.add_argument("--once", action="store_true", help="one pass, print what it erased, exit")
    p.add_argument("--poll", type=float, default=3600.0, help="seconds between passes")
    p.set_defaults(run=retention)


def _person(parser: argparse.ArgumentParser) -> None:
    named = parser.add_mutually_exclusive_group(required=True)
    named.add_argument("--caller", help="the person, as callers are named")
    named.add_argument("--person", help="a person who acts (an agent), as their key is named")
    named.add_argument("--subject", help="the subject's pseudonym, as a report gives it")
