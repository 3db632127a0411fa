"""`itsm import servicenow PATH`: a ServiceNow incident audit export -> itsm.inbound."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from infra.cli.process import Commands

if TYPE_CHECKING:
    from infra.importers.servicenow_import import ImportStats
    from infra.settings import Settings


def import_servicenow(args: argparse.Namespace) -> int:
    from infra.importers.servicenow_import import ExportChanged, NotAnIncidentExport
    from infra.settings import Settings

    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        sys.exit("no Kafka: set ITSM_KAFKA_BOOTSTRAP or pass --bootstrap host:port")
    try:
        stats = _run(args, settings, bootstrap)
    except (NotAnIncidentExport, ExportChanged, FileNotFoundError) as error:
        sys.exit(f"itsm import servicenow: {error}")
    print(stats.summary(), file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, settings: Settings, bootstrap: str) -> ImportStats:
    from infra.importers.servicenow_import import DEFAULT_TOPIC
    from infra.importers.servicenow_import import import_servicenow as run

    return run(
        args.path,
        bootstrap,
        topic=args.topic or settings.inbound_topic or DEFAULT_TOPIC,
        source=args.source,
        source_timezone=args.source_timezone,
        limit=args.limit,
        show_progress=not args.quiet,
        partitions=settings.kafka_partitions,
    )


def register(commands: Commands) -> None:
    """Add `import servicenow PATH [--source-timezone TZ] [--limit N]` to the `itsm` parser."""
    group = commands.add_parser("import", help="import tickets of another tool")
    kinds = group.add_subparsers(dest="import_command", required=True)
    p = kinds.add_parser(
        "servicenow",
        help="a ServiceNow incident audit export (CSV or .csv.gz)"
        " as incident.snapshot CloudEvents on itsm.inbound",
    )
    _servicenow_arguments(p)
    p.set_defaults(run=import_servicenow)


def _servicenow_arguments(p: argparse.ArgumentParser) -> None:
    from infra.importers.servicenow_import import DEFAULT_SOURCE

    p.add_argument("path", help="the export: one row per incident update")
    p.add_argument(
        "--source-timezone",
        metavar="TZ",
        help="IANA zone of the export's dates, e.g. UTC or Europe/Lisbon; written as"
        " offsets. Default: none, the consumer's ITSM_INBOUND_SOURCE_TIMEZONE",
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N rows")
    p.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help=f"the CloudEvents source (default {DEFAULT_SOURCE})",
    )
    p.add_argument("--topic", help="default: ITSM_INBOUND_TOPIC or itsm.inbound")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="default: ITSM_KAFKA_BOOTSTRAP")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
