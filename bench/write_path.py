"""Write-path benchmark: HTTP commands/s and latency against the raw event-store save rate.

    .venv/bin/python bench/write_path.py [--seconds 10] [--clients 16] [--instances 2]
                                         [--bootstrap HOST:PORT]

1. Raw: the eventsourcing application saves one event at a time (no HTTP, no reload).
2. Max load: 16 concurrent clients send commands to a real `itsm serve` process as fast as
   it answers (embedded mode: SQLite store, read models fed in-process, as `make run`).
   The clients are keep-alive connections that send pre-encoded requests, like `wrk`, so
   that the load generator takes little of the two cores it shares with the server.
3. Half load: the same clients, paced to half the rate measured in 2; p99 is the figure
   that counts, because latency at saturation is queueing, not service time.
4. 2 and 3 again in the scale-out shape: Kafka mode, `--instances` stateless API processes
   (default 2, one per core) on one SQLite store, the clients spread over them round-robin
   as a load balancer would. They only take commands: the relay and the projection workers
   run on other machines in production and are not running here (a broker is started for
   the instances to be configured against).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

try:  # the server runs on uvloop too (uvicorn[standard])
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover
    run_loop = asyncio.run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import percentile  # noqa: E402
from domain.incident.commands import LogIncident  # noqa: E402
from domain.shared_kernel.actor import Actor  # noqa: E402
from domain.shared_kernel.command_context import Context  # noqa: E402
from infra.composition_root import bootstrap  # noqa: E402
from infra.settings import Settings  # noqa: E402


def raw_save_rate(seconds: float) -> float:
    container = bootstrap(Settings(data_dir=Path(tempfile.mkdtemp(prefix="raw-"))))
    ctx = Context(Actor("bench"), "bench")
    logged = container.desk.create(
        LogIncident(title="raw", caller="bench", impact=2, urgency=2), ctx
    )
    incident = container.desk.get(logged.id)  # its own copy, to change and save
    saves, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        incident.comment(f"note {saves}", False, ctx.by, ctx.causation_id)
        container.desk.save(incident)
        saves += 1
    rate = saves / (time.perf_counter() - started)
    container.close()
    return rate


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests, like `wrk`.

    The load generator shares the machine's two cores with the server; httpx spends about a
    millisecond of CPU per request, which would be measured as the server's slowness.
    """

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\n"
            + self.head
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def client_loop(
    http: Connection,
    incident_id: str,
    until: float,
    interval: float,
    phase: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    # Paced clients start out of phase: in lockstep they would arrive as bursts of 16.
    path = f"/v1/incidents/{incident_id}/comment"
    n, next_at = 0, time.perf_counter() + phase * interval
    while (now := time.perf_counter()) < until:
        if interval and now < next_at:
            await asyncio.sleep(next_at - now)
        next_at += interval
        started = time.perf_counter()
        status, _ = await http.post(path, b'{"text": "note %d"}' % n)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors.append(status)
        n += 1


async def http_load(
    bases: list[str], key: str, clients: int, seconds: float, rate: float | None
) -> tuple[float, list[float], list[int]]:
    """`clients` connections spread round-robin over the instances at `bases`, as a load
    balancer would."""
    addresses = [base.removeprefix("http://").partition(":")[::2] for base in bases]
    connections = [
        Connection(addresses[n % len(bases)][0], int(addresses[n % len(bases)][1]), key)
        for n in range(clients)
    ]
    try:
        ids = []
        for n, http in enumerate(connections):
            status, body = await http.post(
                "/v1/incidents",
                orjson.dumps({"title": f"bench {n}", "caller": "bench", "impact": 2, "urgency": 2}),
            )
            assert status == 201, body
            ids.append(orjson.loads(body)["id"])
        latencies: list[float] = []
        errors: list[int] = []
        interval = clients / rate if rate else 0.0
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(
                client_loop(http, i, until, interval, n / clients, latencies, errors)
                for n, (http, i) in enumerate(zip(connections, ids, strict=True))
            )
        )
        return len(latencies) / (time.perf_counter() - started), latencies, errors
    finally:
        for http in connections:
            http.close()


def start_servers(
    data_dir: Path, instances: int = 1, bootstrap: str | None = None
) -> tuple[list[subprocess.Popen], list[str], str]:
    """`instances` x `itsm serve` on one fresh store: embedded without `bootstrap`, else in
    Kafka mode. Returns the processes, their base URLs and an agent's key."""
    env = {**os.environ, "ITSM_DATA_DIR": str(data_dir)}
    env.pop("ITSM_KAFKA_BOOTSTRAP", None)
    if bootstrap:
        env["ITSM_KAFKA_BOOTSTRAP"] = bootstrap
    key = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", "--role", "agent", "--name", "bench"],
        env=env,
        cwd=ROOT,
        check=True,
        text=True,
        capture_output=True,
    ).stdout.strip()
    servers, bases = [], []
    for _ in range(instances):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "serve"],
                env={**env, "ITSM_PORT": str(port)},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    for base in bases:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("itsm serve did not start")
    return servers, bases, key


def report(label: str, rate: float, latencies: list[float], errors: list[int]) -> None:
    print(
        f"{label:<34} {rate:8.0f} commands/s   p50 {percentile(latencies, 0.5) * 1e3:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1e3:6.1f} ms   errors {len(errors)}"
    )


def measure(
    label: str,
    args: argparse.Namespace,
    raw: float,
    instances: int = 1,
    bootstrap: str | None = None,
) -> None:
    servers, bases, key = start_servers(
        Path(tempfile.mkdtemp(prefix="http-")), instances, bootstrap
    )
    try:
        run_loop(http_load(bases, key, args.clients, args.warmup, None))
        top, latencies, errors = run_loop(http_load(bases, key, args.clients, args.seconds, None))
        report(f"{label}: max, {args.clients} clients", top, latencies, errors)
        half, latencies, errors = run_loop(
            http_load(bases, key, args.clients, args.seconds, top / 2)
        )
        report(f"{label}: at half max load", half, latencies, errors)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)
    p99 = percentile(latencies, 0.99) * 1e3
    print(
        f"  HTTP / raw = {top / raw:.2f} (target >= 0.50): "
        f"{'met' if top / raw >= 0.5 else 'NOT met'}; p99 at half load = {p99:.1f} ms "
        f"(target <= 25 ms): {'met' if p99 <= 25 else 'NOT met'}"
    )


def main() -> None:
    from bench._common import kafka_broker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of load first, not measured (a fresh store and cold caches)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=2,
        help="API instances in the Kafka-mode run (0: skip that run)",
    )
    parser.add_argument("--bootstrap", help="a broker for the Kafka-mode run; default: start one")
    args = parser.parse_args()
    raw = raw_save_rate(args.seconds)
    print(f"{'raw eventsourcing save':<34} {raw:8.0f} saves/s (one event per save, SQLite)")
    measure("embedded, 1 process", args, raw)
    if args.instances:
        with kafka_broker(args.bootstrap, partitions=6) as bootstrap:
            measure(
                f"Kafka mode, {args.instances} API instances", args, raw, args.instances, bootstrap
            )


if __name__ == "__main__":
    main()
