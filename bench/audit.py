"""Audit's costs: the write path with and without the hash chain, and with personal data in
clear or sealed, and verification speed over a large store, each against a floor measured
in the same run.

    .venv/bin/python bench/audit.py [--seconds 5] [--rounds 3] [--clients 16]
                                    [--events 1000000]

1. Write path: `--clients` threads run commands (comments on 200 incidents, and one new
   incident in four) through the desk for `--seconds`, on a SQLite store recorded by the
   chained recorder
   (infra/event_store/chained_sqlite.py) and on the same store recorded by the library's
   plain one, alternately, `--rounds` times each; the desk's group commit batches them as
   under HTTP load. Ratio: chained / plain commands per second (target >= 0.9).
2. Sealing: the same, on the chained store, with the library's plain mapper and with the
   store's (infra/privacy/personal_data_mapper.py: every incident's caller, title and free
   text sealed under its caller's key; a new incident enrols its caller). Ratio: sealed /
   in clear (target >= 0.8).
3. Verification: `--events` stored events (three per aggregate, payloads of the size the
   desk writes) are inserted directly, chained by `adopt`, and signed by a checkpoint every
   100,000; then `StoreVerification` reads them all back. Floor: reading the same rows and
   hashing each one's bytes once (SHA-256), no chain. Target: >= 50,000 events/s.

A benchmark, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cpu_count, print_summary, rss_mib  # noqa: E402

PLAIN = "eventsourcing.sqlite"


def _settings(directory: Path, plain: bool):
    from infra.settings import Settings

    class Plain(Settings):
        def _sqlite_env(self) -> dict[str, str]:
            return {**super()._sqlite_env(), "PERSISTENCE_MODULE": PLAIN}

    kind = Plain if plain else Settings
    return kind(_env_file=None, data_dir=directory, kafka_bootstrap=None, database_url=None)


def write_rate(plain: bool, seconds: float, clients: int, sealed: bool = True) -> float:
    """Commands per second through the desk, `clients` threads at once: comments, and one
    new incident (a caller of a thousand) in four commands. `plain`: the library's recorder
    (no hash chain); `sealed` False: the library's mapper (no personal data sealed)."""
    from domain.incident.commands import Comment, LogIncident
    from domain.shared_kernel.actor import Actor
    from domain.shared_kernel.command_context import Context
    from infra.composition_root import bootstrap

    with _sealing(sealed):
        container = bootstrap(_settings(Path(tempfile.mkdtemp(prefix="audit-w-")), plain), [])
    ctx = Context(Actor("bench"), "bench-audit")

    def log(n: int) -> LogIncident:
        return LogIncident(title="Printer jammed", caller=f"caller {n % 1000}", impact=2, urgency=2)

    ids = [container.desk.create(log(n), ctx).id for n in range(200)]
    done, stop = [0] * clients, threading.Event()

    def client(number: int) -> None:
        while not stop.is_set():
            if done[number] % 4 == 3:
                container.desk.create(log(number * 7919 + done[number]), ctx)
            else:
                incident = ids[(number * 7 + done[number]) % len(ids)]
                container.desk.execute(incident, Comment(text="replaced the drum"), ctx)
            done[number] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    container.close()
    return sum(done) / elapsed


@contextmanager
def _sealing(sealed: bool) -> Iterator[None]:
    """The composition root's mapper, or (sealed False) the library's plain one."""
    from eventsourcing.persistence import Mapper

    import infra.composition_root as root

    original = root.PersonalDataMapper
    if not sealed:
        root.PersonalDataMapper = lambda transcoder, *args, **kwargs: Mapper(transcoder)  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        root.PersonalDataMapper = original  # type: ignore[misc]


def paired(measure_a, measure_b, rounds: int) -> tuple[list[float], list[float]]:
    """Both measured alternately, each first in turn, so that drift hits both alike."""
    a, b = [], []
    for round_ in range(rounds):
        order = ((a, measure_a), (b, measure_b))
        for results, measure in order if round_ % 2 == 0 else order[::-1]:
            results.append(measure())
        print(f"  {a[-1]:.0f}/s vs {b[-1]:.0f}/s", flush=True)
    return a, b


def stored(directory: Path, events: int, key) -> Path:
    """A store of `events` events inserted directly (three per aggregate), chained and
    signed by a checkpoint every 100,000 events."""
    from infra.audit.checkpoints import Checkpointer
    from infra.composition_root import bootstrap

    container = bootstrap(_settings(directory, plain=False), [])
    container.close()
    database = directory / "events.db"
    state = os.urandom(300).hex().encode()  # about the size of an incident event's bytes
    chunk = 100_000
    for first in range(0, events, chunk):
        _insert(database, first, min(chunk, events - first), state)
        container = bootstrap(_settings(directory, plain=False), [])  # adopt() chains them
        Checkpointer(container.store_db, key).take()
        container.close()
    return database


def _insert(database: Path, first: int, count: int, state: bytes) -> None:
    rows = []
    for n in range(first, first + count):
        aggregate = uuid.UUID(int=n // 3 + 1).hex
        rows.append((aggregate, n % 3 + 1, "domain.incident.incident:Incident.Commented", state))
    with sqlite3.connect(database) as db:
        db.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows)


def verify_rate(directory: Path, public_key) -> tuple[float, int]:
    """Events per second of a full verification, and how many findings it had."""
    from infra.audit.store_verification import StoreVerification
    from infra.composition_root import bootstrap

    container = bootstrap(_settings(directory, plain=False), [])
    dialect = container.desk.recorder.chain.dialect
    started = time.perf_counter()
    report = StoreVerification(container.store_db, dialect, public_key).run()
    elapsed = time.perf_counter() - started
    container.close()
    return report.events / elapsed, len(report.findings)


def floor_rate(database: Path) -> float:
    """Rows read back and each state hashed once: what any verification must do."""
    started, count, after = time.perf_counter(), 0, 0
    with sqlite3.connect(database) as db:
        while rows := db.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events"
            " WHERE rowid > ? ORDER BY rowid LIMIT 10000",
            (after,),
        ).fetchall():
            for row in rows:
                hashlib.sha256(row[4]).digest()
            count, after = count + len(rows), rows[-1][0]
    return count / (time.perf_counter() - started)


def _ratios(measured: list[float], floor: list[float]) -> str:
    """The median of the pairs' ratios (each pair ran back to back), and their range: the
    machine's drift between rounds cancels within a pair, not across them."""
    ratios = sorted(m / f for m, f in zip(measured, floor, strict=True))
    return f"x{statistics.median(ratios):.2f} (pairs x{ratios[0]:.2f}..x{ratios[-1]:.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args(argv)

    seconds, clients = args.seconds, args.clients
    print("write path: plain store vs chained", flush=True)
    plain, chained = paired(
        lambda: write_rate(True, seconds, clients),
        lambda: write_rate(False, seconds, clients),
        args.rounds,
    )
    print("write path: personal data in clear vs sealed", flush=True)
    clear, sealed = paired(
        lambda: write_rate(False, seconds, clients, sealed=False),
        lambda: write_rate(False, seconds, clients),
        args.rounds,
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    directory = Path(tempfile.mkdtemp(prefix="audit-v-"))
    started = time.perf_counter()
    database = stored(directory, args.events, key)
    built = time.perf_counter() - started
    verified, findings = verify_rate(directory, key.public_key())
    raw = floor_rate(database)
    p50 = statistics.median
    print_summary(
        "tamper evidence (SQLite)",
        [
            ("machine", f"{cpu_count()} CPUs, Python {sys.version.split()[0]}"),
            ("write path, plain store", f"{p50(plain):.0f} commands/s p50"),
            (
                "write path, chained store",
                f"{p50(chained):.0f} commands/s p50; {_ratios(chained, plain)}"
                " the plain store (target >= 0.9)",
            ),
            ("write path, personal data in clear", f"{p50(clear):.0f} commands/s p50"),
            (
                "write path, personal data sealed",
                f"{p50(sealed):.0f} commands/s p50; {_ratios(sealed, clear)}"
                " in clear (target >= 0.8)",
            ),
            (f"{args.events:,} events inserted, chained, signed", f"{built:.1f}s"),
            ("floor: rows read, each hashed once", f"{raw:,.0f} events/s"),
            (
                "itsm audit verify",
                f"{verified:,.0f} events/s; x{verified / raw:.2f} the floor (target >= 50,000/s);"
                f" {findings} findings",
            ),
            ("RSS", f"{rss_mib():.0f} MiB"),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
