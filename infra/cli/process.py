"""What every command group needs: the container, Kafka's address, a stop on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, TypeAlias

from infra.settings import Settings

if TYPE_CHECKING:
    from infra.composition_root import Container

# What each command group's `register` adds its subcommands to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def open_container() -> Container:
    from infra.composition_root import bootstrap

    return bootstrap(Settings())


def require_kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        sys.exit(
            "ITSM_KAFKA_BOOTSTRAP is not set: without Kafka, `itsm serve` feeds the "
            "read models in-process and no relay or worker is needed"
        )
    return settings.kafka_bootstrap
