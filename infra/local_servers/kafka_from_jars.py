"""Run a real single-node Kafka 4.x broker (KRaft, broker+controller) from Maven jars.

Standard library only, so it works before the project's venv exists.
CLI: python -m infra.local_servers.kafka_from_jars fetch|up|down [--data-dir DIR] [--port N]
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = HERE / "kafka" / "log4j2.properties"
DEP_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
READY_LINE = "Kafka Server started"
START_TIMEOUT = 60.0

# C1-only JIT: format+start to ready 2.8 s instead of 3.4 s on 2 cores (measured;
# -XX:+UseSerialGC gained nothing). Peak throughput doesn't matter for dev/test.
FAST_START_FLAGS = ["-XX:TieredStopAtLevel=1"]


@dataclass
class Broker:
    bootstrap: str
    pid: int
    data_dir: Path


# ---------------------------------------------------------------- jars


def default_libs_dir() -> Path:
    base = os.environ.get("ITSM_DATA_DIR")
    return Path(base) / "kafka-libs" if base else Path("var") / "kafka-libs"


def _pom_marker(libs_dir: Path) -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    return libs_dir / f".fetched-{digest}"


def fetch_jars(libs_dir: Path) -> Path:
    """Copy the broker's jars into libs_dir with Maven, unless the pom is unchanged."""
    libs_dir = Path(libs_dir).resolve()
    if _pom_marker(libs_dir).exists():
        return libs_dir
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    # A lock so parallel test sessions don't run Maven into the same dir.
    with open(libs_dir.parent / f".{libs_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _pom_marker(libs_dir).exists():
            _run_maven_into(libs_dir)
    return libs_dir


def _run_maven_into(libs_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    # Fetch into a fresh dir and swap: stale jars of an older version in the
    # same dir would end up on the 'libs/*' classpath next to the new ones.
    tmp = Path(tempfile.mkdtemp(prefix=".kafka-libs-", dir=libs_dir.parent))
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        f"{DEP_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"Maven failed to fetch Kafka jars:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    shutil.rmtree(libs_dir, ignore_errors=True)
    tmp.rename(libs_dir)
    _pom_marker(libs_dir).touch()


# ---------------------------------------------------------------- config


def _free_ports(n: int) -> list[int]:
    # Hold all sockets open until every port is picked so they are distinct.
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cluster_id() -> str:
    # Same as Kafka's Uuid.randomUuid().toString(): 22-char base64url, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _server_properties(data_dir: Path, port: int, cport: int, partitions: int) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "kraft-data"),
        "num.partitions": str(partitions),
        # Single node: internal topics must not ask for 3 replicas, and one
        # partition each keeps coordinator loading instant.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Default 3 s delay makes every first consumer-group join wait.
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created explicitly with their own retention configs.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


# ---------------------------------------------------------------- process


def _files(data_dir: Path) -> dict[str, Path]:
    return {
        "props": data_dir / "server.properties",
        "pid": data_dir / "broker.pid",
        "state": data_dir / "broker.json",
        "out": data_dir / "broker.out",
        "logs": data_dir / "logs",
        "meta": data_dir / "kraft-data" / "meta.properties",
    }


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java:
        raise RuntimeError(
            "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
        )
    return java


def _java_cmd(libs_dir: Path, data_dir: Path, main: str, heap: str | None = None) -> list[str]:
    cmd = [_java()]
    if heap:
        cmd += [f"-Xmx{heap}", f"-Xms{heap}"]
    return (
        cmd
        + FAST_START_FLAGS
        + [
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={_files(data_dir)['logs']}",
            "-cp",
            f"{libs_dir}/*",
            main,
        ]
    )


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our own exited child, or it stays a zombie that looks alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Guard against pid reuse after a reboot or a crash.
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"kafka.Kafka" in cmdline.read_bytes()


def _format_storage(libs_dir: Path, data_dir: Path) -> None:
    f = _files(data_dir)
    cmd = _java_cmd(libs_dir, data_dir, "kafka.tools.StorageTool") + [
        "format",
        "--standalone",
        "-t",
        _cluster_id(),
        "-c",
        str(f["props"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kafka-storage format failed:\n{proc.stdout}{proc.stderr}")


def _log_excerpt(data_dir: Path, lines: int = 30) -> str:
    """First ERROR lines (the cause; stack traces push it out of the tail) plus the log tail."""
    parts = []
    for path in (_files(data_dir)["logs"] / "server.log", _files(data_dir)["out"]):
        try:
            text = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        errors = [line for line in text if " ERROR " in line][:5]
        parts.append(f"--- {path} ---\n" + "\n".join(errors + ["..."] + text[-lines:]))
    return "\n".join(parts)


def _answers_api_versions(port: int) -> bool:
    """Send a Kafka ApiVersions v0 request; True if the broker answers with no error."""
    client = b"itsm-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(10)
    except OSError:
        return False
    # size(4) correlation_id(4) error_code(2)
    return len(head) >= 10 and struct.unpack(">iih", head[:10])[1:] == (1, 0)


def _wait_ready(broker: Broker, proc: subprocess.Popen, port: int, timeout: float) -> None:
    log = _files(broker.data_dir)["logs"] / "server.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # proc.poll(), not _alive(): right after fork /proc/<pid>/cmdline is still python's.
        if proc.poll() is not None:
            raise RuntimeError(f"Kafka exited during start-up:\n{_log_excerpt(broker.data_dir)}")
        started = log.exists() and READY_LINE in log.read_text(errors="replace")
        if started and _answers_api_versions(port):
            return
        time.sleep(0.1)
    stop_broker(broker.data_dir)
    raise RuntimeError(f"Kafka not ready after {timeout:.0f}s:\n{_log_excerpt(broker.data_dir)}")


def _ports(data_dir: Path, port: int | None) -> tuple[int, int]:
    # A formatted dir keeps its controller port: the KRaft voter set records its endpoint.
    state = _files(data_dir)["state"]
    if state.exists() and _files(data_dir)["meta"].exists():
        saved = json.loads(state.read_text())
        return port or saved["port"], saved["controller_port"]
    free = _free_ports(2)
    return port or free[0], free[1]


def start_broker(
    data_dir: Path,
    port: int | None = None,
    heap: str = "512m",
    partitions: int = 6,
    libs_dir: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> Broker:
    """Format (first time only) and start a broker in data_dir; returns once it serves requests."""
    data_dir = Path(data_dir).resolve()
    if (running := running_broker(data_dir)) is not None:
        return running
    libs_dir = fetch_jars(libs_dir or default_libs_dir())
    f = _files(data_dir)
    f["logs"].mkdir(parents=True, exist_ok=True)
    port, cport = _ports(data_dir, port)
    f["props"].write_text(_server_properties(data_dir, port, cport, partitions))
    if not f["meta"].exists():
        _format_storage(libs_dir, data_dir)
    cmd = _java_cmd(libs_dir, data_dir, "kafka.Kafka", heap) + [str(f["props"])]
    with open(f["out"], "ab") as out:
        # New session: Ctrl-C in the launching shell must not kill the broker.
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=data_dir,
        )
    broker = Broker(f"127.0.0.1:{port}", proc.pid, data_dir)
    f["pid"].write_text(str(proc.pid))
    f["state"].write_text(
        json.dumps(
            {"bootstrap": broker.bootstrap, "port": port, "controller_port": cport, "pid": proc.pid}
        )
    )
    _wait_ready(broker, proc, port, timeout)
    return broker


def running_broker(data_dir: Path) -> Broker | None:
    data_dir = Path(data_dir).resolve()
    f = _files(data_dir)
    try:
        pid = int(f["pid"].read_text())
        bootstrap = json.loads(f["state"].read_text())["bootstrap"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return Broker(bootstrap, pid, data_dir) if _alive(pid) else None


def stop_broker(data_dir: Path, timeout: float = 20) -> None:
    """SIGTERM (controlled shutdown), then SIGKILL after timeout. No-op if not running."""
    data_dir = Path(data_dir).resolve()
    pid_file = _files(data_dir)["pid"]
    broker = running_broker(data_dir)
    if broker is not None:
        os.kill(broker.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(broker.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(broker.pid):
            os.kill(broker.pid, signal.SIGKILL)
            while _alive(broker.pid):
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.local_servers.kafka_from_jars")
    ap.add_argument("action", choices=["fetch", "up", "down"])
    ap.add_argument("--data-dir", type=Path, default=Path("var") / "kafka")
    ap.add_argument("--libs-dir", type=Path, default=None)
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args(argv)
    if args.action == "fetch":
        print(fetch_jars(args.libs_dir or default_libs_dir()))
    elif args.action == "up":
        print(start_broker(args.data_dir, port=args.port, libs_dir=args.libs_dir).bootstrap)
    else:
        stop_broker(args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
