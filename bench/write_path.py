"""Write-path benchmark: HTTP commands/s and latency against the raw event-store save rate.

    .venv/bin/python bench/write_path.py [--seconds 10] [--clients 16]

1. Raw: the eventsourcing application saves one event at a time (no HTTP, no reload).
2. Max load: 16 concurrent clients send commands to a real `itsm serve` process as fast as
   it answers (embedded mode: SQLite store, read models fed in-process, as `make run`).
3. Half load: the same clients, paced to half the rate measured in 2; p99 is the figure
   that counts, because latency at saturation is queueing, not service time.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.commands import Comment, Context, LogIncident  # noqa: E402
from domain.values import Actor  # noqa: E402
from infra.bootstrap import bootstrap  # noqa: E402
from infra.settings import Settings  # noqa: E402


def raw_save_rate(seconds: float) -> float:
    container = bootstrap(Settings(data_dir=Path(tempfile.mkdtemp(prefix="raw-"))))
    ctx = Context(Actor("bench"), "bench")
    incident = container.desk.log_incident(
        LogIncident(title="raw", caller="bench", impact=2, urgency=2), ctx)
    saves, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        incident.comment(f"note {saves}", False, ctx.by, ctx.causation_id)
        container.desk.save(incident)
        saves += 1
    rate = saves / (time.perf_counter() - started)
    container.close()
    return rate


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def client_loop(http: httpx.AsyncClient, incident_id: str, until: float,
                      interval: float, phase: float, latencies: list[float],
                      errors: list[int]) -> None:
    # Paced clients start out of phase: in lockstep they would arrive as bursts of 16.
    n, next_at = 0, time.perf_counter() + phase * interval
    while (now := time.perf_counter()) < until:
        if interval and now < next_at:
            await asyncio.sleep(next_at - now)
        next_at += interval
        started = time.perf_counter()
        response = await http.post(f"/v1/incidents/{incident_id}/comment",
                                   json={"text": f"note {n}"})
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            errors.append(response.status_code)
        n += 1


async def http_load(base: str, key: str, clients: int, seconds: float,
                    rate: float | None) -> tuple[float, list[float], list[int]]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"},
                                 limits=limits, timeout=30) as http:
        ids = []
        for n in range(clients):
            created = await http.post("/v1/incidents", json={
                "title": f"bench {n}", "caller": "bench", "impact": 2, "urgency": 2})
            ids.append(created.json()["id"])
        latencies: list[float] = []
        errors: list[int] = []
        interval = clients / rate if rate else 0.0
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(client_loop(http, i, until, interval, n / clients, latencies,
                                           errors) for n, i in enumerate(ids)))
        return len(latencies) / (time.perf_counter() - started), latencies, errors


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ITSM_DATA_DIR": str(data_dir), "ITSM_PORT": str(port)}
    env.pop("ITSM_KAFKA_BOOTSTRAP", None)
    key = subprocess.run([sys.executable, "-m", "infra.cli", "keys", "create", "--role", "agent",
                          "--name", "bench"], env=env, cwd=ROOT, check=True, text=True,
                         capture_output=True).stdout.strip()
    server = subprocess.Popen([sys.executable, "-m", "infra.cli", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return server, base, key
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("itsm serve did not start")


def report(label: str, rate: float, latencies: list[float], errors: list[int]) -> None:
    print(f"{label:<22} {rate:8.0f} commands/s   p50 {percentile(latencies, .5) * 1e3:6.1f} ms"
          f"   p99 {percentile(latencies, .99) * 1e3:6.1f} ms   errors {len(errors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of load first, not measured (a fresh store and cold caches)")
    args = parser.parse_args()
    raw = raw_save_rate(args.seconds)
    print(f"{'raw eventsourcing save':<22} {raw:8.0f} saves/s (one event per save, SQLite)")
    server, base, key = start_server(Path(tempfile.mkdtemp(prefix="http-")))
    try:
        asyncio.run(http_load(base, key, args.clients, args.warmup, None))
        top, latencies, errors = asyncio.run(http_load(base, key, args.clients, args.seconds, None))
        report(f"HTTP max, {args.clients} clients", top, latencies, errors)
        half, latencies, errors = asyncio.run(
            http_load(base, key, args.clients, args.seconds, top / 2))
        report("HTTP at half max load", half, latencies, errors)
    finally:
        server.terminate()
        server.wait(timeout=20)
    p99 = percentile(latencies, .99) * 1e3
    print(f"\nHTTP / raw = {top / raw:.2f} (target >= 0.50): {'met' if top / raw >= .5 else 'NOT met'}")
    print(f"p99 at half load = {p99:.1f} ms (target <= 25 ms): {'met' if p99 <= 25 else 'NOT met'}")


if __name__ == "__main__":
    main()
