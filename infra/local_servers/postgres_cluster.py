"""Start/stop a throwaway local PostgreSQL server (no Docker). Stdlib only.

PostgreSQL refuses to run as root, so when we are root the server binaries
run as the unprivileged ``postgres`` OS user (via ``runuser``). Binaries can
be installed with ``infra/local_servers/scripts/ensure-postgres.sh``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OS_USER = "postgres"
ROLE = DBNAME = PASSWORD = "itsm"
_CONF = "itsm.conf"
# Durability is pointless for a throwaway server; these make tests fast.
_SETTINGS = """\
listen_addresses = '127.0.0.1'
unix_socket_directories = '{data_dir}'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
"""


@dataclass
class PgServer:
    url: str
    data_dir: Path
    port: int


def find_pg_bin() -> Path:
    """Newest /usr/lib/postgresql/*/bin with initdb, else initdb from PATH."""
    dirs = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    dirs.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)
    if dirs:
        return dirs[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise FileNotFoundError("initdb not found; run infra/local_servers/scripts/ensure-postgres.sh")


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", OS_USER], check=True)
        return pwd.getpwnam(OS_USER)


def _run_server_cmd(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd must be readable by the postgres user (root's cwd/HOME usually aren't).
    if _as_root():
        args = ["runuser", "-u", OS_USER, "--", *args]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # initdb/postgres insist on 0700 (or 0750)
    if _as_root():
        user = _ensure_os_user()
        os.chown(data_dir, user.pw_uid, user.pw_gid)
        probe = _run_server_cmd(["test", "-w", str(data_dir)], cwd=Path("/"))
        if probe.returncode != 0:
            raise PermissionError(
                f"user {OS_USER!r} cannot reach {data_dir}; every parent dir needs o+x "
                "(pytest's /tmp/pytest-of-root is 0700, so use a plain /tmp dir)"
            )


def _initdb(bin_dir: Path, data_dir: Path) -> None:
    proc = _run_server_cmd(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            OS_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        cwd=data_dir,
    )
    _check(proc, "initdb")
    with open(data_dir / "postgresql.conf", "a") as f:
        f.write(f"include_if_exists '{_CONF}'\n")


def _write_settings(data_dir: Path, port: int) -> None:
    # Rewritten each start so a reused data dir can move to another port.
    text = _SETTINGS.format(data_dir=data_dir) + f"port = {port}\n"
    (data_dir / _CONF).write_text(text)


def _configured_port(data_dir: Path) -> int | None:
    conf = data_dir / _CONF
    if not conf.exists():
        return None
    for line in conf.read_text().splitlines():
        if line.startswith("port ="):
            return int(line.split("=")[1])
    return None


def _is_running(bin_dir: Path, data_dir: Path) -> bool:
    return (
        _run_server_cmd(
            [str(bin_dir / "pg_ctl"), "status", "-D", str(data_dir)], data_dir
        ).returncode
        == 0
    )


def _psql(bin_dir: Path, port: int, *sql: str) -> None:
    # TCP + trust auth: works as any OS user, no socket-dir permissions involved.
    args = [
        str(bin_dir / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        OS_USER,
        "-d",
        "postgres",
    ]
    for stmt in sql:
        args += ["-c", stmt]
    _check(subprocess.run(args, capture_output=True, text=True), "psql")


def _create_role_and_db(bin_dir: Path, port: int) -> None:
    # SUPERUSER so tests can CREATE/DROP DATABASE ... WITH (FORCE) freely.
    _psql(
        bin_dir,
        port,
        f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'",
        f"CREATE DATABASE {DBNAME} OWNER {ROLE}",
    )


def start_pg(data_dir: Path, port: int | None = None) -> PgServer:
    """Init (if needed) and start a server in data_dir; idempotent if running."""
    data_dir = Path(data_dir).resolve()
    bin_dir = find_pg_bin()
    fresh = not (data_dir / "PG_VERSION").exists()
    if not fresh and _is_running(bin_dir, data_dir):
        port = _configured_port(data_dir) or 5432
        return PgServer(_url(port), data_dir, port)
    _prepare_dir(data_dir)
    if fresh:
        _initdb(bin_dir, data_dir)
    port = port or (None if fresh else _configured_port(data_dir)) or _free_port()
    _write_settings(data_dir, port)
    proc = _run_server_cmd(
        [
            str(bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(data_dir),
            "-l",
            str(data_dir / "server.log"),
        ],
        cwd=data_dir,
    )
    _check(proc, f"pg_ctl start (see {data_dir / 'server.log'})")
    if fresh:
        _create_role_and_db(bin_dir, port)
    return PgServer(_url(port), data_dir, port)


def stop_pg(server_or_data_dir: PgServer | Path | str) -> None:
    """Fast shutdown; a no-op if the server is not running."""
    data_dir = Path(getattr(server_or_data_dir, "data_dir", server_or_data_dir)).resolve()
    bin_dir = find_pg_bin()
    if not _is_running(bin_dir, data_dir):
        return
    proc = _run_server_cmd(
        [str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data_dir)], data_dir
    )
    _check(proc, "pg_ctl stop")


def _url(port: int, dbname: str = DBNAME) -> str:
    return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{dbname}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_servers.postgres_cluster")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.command == "up":
        print(start_pg(args.data_dir, args.port).url)
    else:
        stop_pg(args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
