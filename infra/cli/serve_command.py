"""`itsm serve`: the HTTP API."""

from __future__ import annotations

import argparse
import sys

from infra.cli.process import Commands
from infra.settings import Settings

_ONE_PROCESS = (
    "one API process only without Kafka: `itsm serve` then feeds the read models "
    "and runs the SLA scheduler and the review reminders in-process, which must happen "
    "once. Set ITSM_KAFKA_BOOTSTRAP (and run `itsm relay`, `itsm worker`, `itsm sla "
    "scheduler`, `itsm improvements reminders`) to run several."
)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    workers = args.workers or settings.api_workers
    if workers > 1 and not settings.kafka_bootstrap:
        sys.exit(_ONE_PROCESS)
    # Per-request access lines cost a lock and a write on the hot path; /metrics and the
    # X-Request-ID on every event already tell what happened.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        log_level="info",
        access_log=settings.access_log,
    )
    return 0


def register(commands: Commands) -> None:
    p = commands.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--host"), p.add_argument("--port", type=int)
    p.add_argument(
        "--workers",
        type=int,
        help="API processes sharing the port (ITSM_API_WORKERS; needs Kafka if > 1)",
    )
    p.set_defaults(run=serve)
