"""`itsm kafka up|down`: a local Kafka broker for development."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.cli.process import Commands
from infra.settings import Settings


def kafka_up(args: argparse.Namespace) -> int:
    from infra.local_servers import kafka_from_jars as kafka_broker

    libs = kafka_broker.fetch_jars(kafka_broker.default_libs_dir())
    broker = kafka_broker.start_broker(
        Path(args.data_dir), port=args.port, libs_dir=libs, partitions=Settings().kafka_partitions
    )
    print(broker.bootstrap)
    return 0


def kafka_down(args: argparse.Namespace) -> int:
    from infra.local_servers import kafka_from_jars as kafka_broker

    kafka_broker.stop_broker(Path(args.data_dir))
    return 0


def register(commands: Commands) -> None:
    kafka = commands.add_parser("kafka").add_subparsers(dest="kafka_command", required=True)
    default_dir = str(Settings().data_dir / "kafka")
    p = kafka.add_parser("up", help="run a local single-node Kafka (KRaft); prints its address")
    p.add_argument("--data-dir", default=default_dir), p.add_argument("--port", type=int)
    p.set_defaults(run=kafka_up)
    p = kafka.add_parser("down", help="stop the local Kafka")
    p.add_argument("--data-dir", default=default_dir)
    p.set_defaults(run=kafka_down)
