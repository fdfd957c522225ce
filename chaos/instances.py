"""The app instances under test, served as `make serve` serves them: gunicorn with
reservo/gunicorn_conf.py, sync workers, each instance in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from chaos import processes
from chaos.cluster import ROOT, START_TIMEOUT_S, faketime_library


@dataclass
class AppInstance:
    """One app instance, served as `make serve` serves it: gunicorn with
    reservo/gunicorn_conf.py, in a process group of its own."""

    name: str
    port: int
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    faketime: str | None = None
    starts: int = 0
    log_files: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, faketime: str | None = None) -> None:
        """Start gunicorn; with `faketime` (e.g. "+1h"), under libfaketime: its clock moved."""
        self.starts += 1
        env = {
            **self.env,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"metrics-{self.name}-{self.starts}"),
        }
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
        if faketime is not None:
            library = faketime_library()
            if library is None:
                raise RuntimeError("libfaketime is not installed (apt-get install faketime)")
            env.update(LD_PRELOAD=library, FAKETIME=faketime, FAKETIME_DONT_RESET="1")
        self.faketime = faketime
        log_path = self.workdir / f"instance-{self.name}-{self.starts}.log"
        self.log_files.append(log_path)
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [gunicorn, "-c", "reservo/gunicorn_conf.py", "reservo.wsgi:application"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        def up() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"instance {self.name} exited; see {self.log_files[-1]}")
            return self.ready() and len(self.workers()) >= self.expected_workers()

        processes.wait_for(up, timeout, f"instance {self.name} to be ready", interval=0.1)

    def expected_workers(self) -> int:
        return int(self.env.get("RESERVO_WEB_WORKERS") or (os.cpu_count() or 1) * 2)

    def workers(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return processes.children(self.process.pid)

    def kill(self) -> None:
        """kill -9 of the whole instance: the master and every worker at once."""
        if self.process is not None:
            processes.signal_group(self.process, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM to the master: in-flight requests are finished, then it exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            processes.signal_group(self.process, signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(40)
        processes.stop_group(self.process, grace_s=1)

    def worker_timeouts(self) -> list[str]:
        """gunicorn's own word that a request hung past its timeout."""
        lines = []
        for path in self.log_files:
            if path.exists():
                lines += [
                    line.strip()
                    for line in path.read_text(errors="replace").splitlines()
                    if "WORKER TIMEOUT" in line
                ]
        return lines


def app_environment(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """The instances' environment: behind PgBouncer, throttles out of the way. Other
    RESERVO_* bounds and sizes the caller set (RESERVO_LOCK_TIMEOUT_MS, ...) are kept."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RESERVO_PGBOUNCER": "1",
        "RESERVO_DATA_DIR": str(workdir),
        # Served as in production: these must be given. No mail leaves a chaos run.
        "SECRET_KEY": "chaos-" + os.urandom(16).hex(),
        "RESERVO_EMAIL_URL": "dummymail://",
        "RESERVO_PUBLIC_URL": "https://reservo.invalid",
        "RESERVO_THROTTLE_BOOK": "1000000/min",
        "RESERVO_THROTTLE_MANAGE": "1000000/min",
        "RESERVO_THROTTLE_READ": "1000000/min",
        "RESERVO_LOG_LEVEL": os.environ.get("RESERVO_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
    }
