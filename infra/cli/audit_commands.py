"""`itsm audit ...`: the signing key, checkpoints of the hash chain, and verification
(docs/audit.md)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from infra.cli.process import Commands

if TYPE_CHECKING:
    from infra.audit.store_verification import Finding, Report
    from infra.composition_root import Container


def keygen(args: argparse.Namespace) -> int:
    """A new signing key at --path (default: ITSM_AUDIT_SIGNING_KEY); prints the public
    key's path."""
    from infra.audit.checkpoints import generate_key
    from infra.settings import Settings

    path = args.path or Settings().audit_signing_key
    if path is None:
        sys.exit("give --path or set ITSM_AUDIT_SIGNING_KEY")
    try:
        print(generate_key(Path(path)))
    except FileExistsError as error:
        sys.exit(str(error))
    return 0


def checkpoints(args: argparse.Namespace) -> int:
    """Sign checkpoints: one now (--once), or whenever one is due until stopped."""
    from infra.audit.checkpoints import Checkpointer, Policy, load_key
    from infra.cli.process import open_container, stop_on_signals

    container = open_container()
    try:
        key_path = _key_path(container.settings.audit_signing_key)
        signer = Checkpointer(container.store_db, load_key(key_path))
        if args.once:
            taken = signer.take()
            print(
                f"checkpoint {taken.seq} at position {taken.position}" if taken else "nothing new"
            )
            return 0
        policy = Policy(
            container.settings.audit_checkpoint_events, container.settings.audit_checkpoint_seconds
        )
        stop = stop_on_signals()
        while not stop.wait(args.poll):
            if signer.due(policy):
                signer.take()
    finally:
        container.close()
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-read the store from the start (or a verified checkpoint), and with --kafka the
    events topic from offset 0: exit status 1 on any finding, each printed with its
    position and aggregate."""
    from infra.cli.process import open_container

    container = open_container()
    try:
        report = _verify_store(container, args)
        findings = list(report.findings)
        if args.kafka:
            findings += _verify_topic(container, report.hashes)
    finally:
        container.close()
    for finding in findings:
        print(finding.line())
    print(
        f"{report.events} events to position {report.last_position}, {report.checkpoints}"
        f" checkpoints, {report.unsigned} events not yet signed:"
        f" {'clean' if not findings else f'{len(findings)} findings'}"
    )
    return 0 if not findings else 1


def _verify_store(container: Container, args: argparse.Namespace) -> Report:
    from infra.audit.proof import load_public_pem
    from infra.audit.store_verification import StoreVerification
    from infra.progress import Progress

    public = args.public_key or Path(f"{_key_path(container.settings.audit_signing_key)}.pub")
    progress = Progress(container.desk.stored_events(), "verify the store")
    run = StoreVerification(
        container.store_db,
        container.desk.recorder.chain.dialect,  # type: ignore[attr-defined]
        load_public_pem(Path(public).read_bytes()),
        progress.advance,
        keep_hashes=args.kafka,
    )
    try:
        return run.run(args.start)
    except ValueError as error:
        sys.exit(str(error))
    finally:
        progress.close()


def _verify_topic(container: Container, hashes: dict[int, bytes]) -> list[Finding]:
    from infra.audit.kafka_verification import KafkaVerification, topic_records
    from infra.cli.process import require_kafka
    from infra.event_store.publishing import to_envelope
    from infra.messaging.relay import RelayPosition
    from infra.progress import Progress

    settings, desk = container.settings, container.desk
    topic = settings.events_topic
    progress = Progress(container.desk.stored_events(), "verify the topic")
    check = KafkaVerification(
        hashes,
        RelayPosition(container.store_db, topic).get() - 1,
        lambda after, limit: desk.recorder.select_notifications(start=after + 1, limit=limit),
        lambda notification: to_envelope(desk.publishing_mapper, notification),
    )
    try:
        return check.run(topic_records(require_kafka(settings), topic, progress.advance))
    finally:
        progress.close()


def export(args: argparse.Namespace) -> int:
    """A bundle of the selected events an auditor can verify alone (verify-bundle); the
    events not yet signed are signed first when the signing key is at hand."""
    from infra.audit.checkpoints import Checkpointer, load_key
    from infra.audit.export import ProvenEvents, write_bundle
    from infra.audit.proof import load_public_pem
    from infra.cli.process import open_container

    container = open_container()
    try:
        key_path = container.settings.audit_signing_key
        if key_path is not None and key_path.exists():
            Checkpointer(container.store_db, load_key(key_path)).take()
        public = args.public_key or Path(f"{_key_path(key_path)}.pub")
        positions, selection = _selected(container, args)
        count = write_bundle(
            args.out,
            ProvenEvents(container.store_db, container.desk.recorder.chain.dialect),  # type: ignore[attr-defined]
            positions,
            load_public_pem(Path(public).read_bytes()),
            selection,
        )
    finally:
        container.close()
    print(f"{count} events in {args.out}")
    return 0


def _selected(container: Container, args: argparse.Namespace) -> tuple[list[int], dict]:
    """The positions chosen: one aggregate's from the store, else from the audit trail."""
    from projections.audit.audit_trail import positions

    if args.aggregate:
        dialect = container.desk.recorder.chain.dialect  # type: ignore[attr-defined]
        with container.store_db.transaction(read_only=True) as tx:
            rows = tx.execute(
                f"SELECT {dialect.position} FROM {dialect.events} WHERE originator_id = %s"
                " ORDER BY originator_version",
                [dialect.originator(args.aggregate)],
            ).fetchall()
        return [int(row[0]) for row in rows], {"aggregate": str(args.aggregate)}
    selection = {
        "from": args.start and args.start.isoformat(),
        "to": args.end and args.end.isoformat(),
        "actor": args.actor,
    }
    actor = args.actor and (args.actor, container.vault.person_token(args.actor))
    with container.read_db.transaction(read_only=True) as tx:
        return positions(tx, args.start, args.end, actor), selection


def verify_bundle(args: argparse.Namespace) -> int:
    """Check a bundle alone (no database, no broker): what `python infra/audit/proof.py
    BUNDLE` does."""
    from infra.audit.proof import main as check

    trusted = [str(args.public_key)] if args.public_key else []
    return check([str(args.bundle), *trusted])


def _instant(text: str) -> datetime:
    """An ISO 8601 instant; one without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _key_path(configured: Path | None) -> Path:
    if configured is None:
        sys.exit("ITSM_AUDIT_SIGNING_KEY is not set: create a key with `itsm audit keygen`")
    return configured


def register(commands: Commands) -> None:
    """Add the audit subcommands to the `itsm` parser."""
    audit = commands.add_parser(
        "audit", help="tamper evidence: signing key, checkpoints, verification"
    ).add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("keygen", help="create the Ed25519 key checkpoints are signed with")
    p.add_argument("--path", type=Path, help="where (default: ITSM_AUDIT_SIGNING_KEY)")
    p.set_defaults(run=keygen)
    p = audit.add_parser("checkpoints", help="sign checkpoints of the hash chain")
    p.add_argument("--once", action="store_true", help="sign one now if anything is new, exit")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between checks (default 1)")
    p.set_defaults(run=checkpoints)
    p = audit.add_parser("verify", help="re-read the store and report any tampering")
    p.add_argument(
        "--from", dest="start", type=int, help="resume after the checkpoint at this position"
    )
    p.add_argument("--public-key", type=Path, help="PEM (default: the signing key's .pub)")
    p.add_argument(
        "--kafka", action="store_true", help="also compare the events topic from offset 0"
    )
    p.set_defaults(run=verify)
    p = audit.add_parser("export", help="a bundle of events an auditor verifies alone")
    chosen = p.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--aggregate", type=UUID, help="every event of one aggregate")
    chosen.add_argument(
        "--from", dest="start", type=_instant, help="events from this instant (ISO 8601)"
    )
    chosen.add_argument("--actor", help="events by this actor (a person, a rule, a system)")
    p.add_argument(
        "--to", dest="end", type=_instant, help="with --from or --actor: events before this"
    )
    p.add_argument("--out", type=Path, required=True, help="the bundle's directory")
    p.add_argument("--public-key", type=Path, help="PEM (default: the signing key's .pub)")
    p.set_defaults(run=export)
    p = audit.add_parser("verify-bundle", help="check an exported bundle, offline")
    p.add_argument("bundle", type=Path)
    p.add_argument("--public-key", type=Path, help="the key you trust (PEM), not the bundle's")
    p.set_defaults(run=verify_bundle)
