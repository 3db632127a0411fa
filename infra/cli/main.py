"""The `itsm` command: serve, relay, worker, keys, projections, kafka."""

from __future__ import annotations

import argparse
import logging
import sys

from infra.cli import (
    audit_commands,
    gdpr_commands,
    import_commands,
    improvement_commands,
    inbound_commands,
    key_commands,
    local_kafka_commands,
    pipeline_commands,
    read_model_commands,
    serve_command,
    sla_commands,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="itsm", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    for group in (
        serve_command,
        pipeline_commands,
        key_commands,
        read_model_commands,
        local_kafka_commands,
        sla_commands,
        improvement_commands,
        inbound_commands,
        import_commands,
        audit_commands,
        gdpr_commands,
    ):
        group.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    status: int = args.run(args)  # the subcommand's, set by its `register`
    return status


if __name__ == "__main__":
    sys.exit(main())
