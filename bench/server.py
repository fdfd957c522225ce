"""The server under test, started as `make serve` starts it, and the processes it watches.

Every process here is started in its own session so that stopping it also stops its
children; `stop_process` is bounded (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import psutil

from bench.latency import delayed_endpoint, postgres_address

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90
STOP_GRACE_S = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gunicorn_config(env: dict[str, str]) -> dict[str, Any]:
    """The values reservo/gunicorn_conf.py gives under `env` (workers, threads, class)."""
    saved = os.environ.copy()
    try:
        os.environ.update(env)
        config = runpy.run_path(str(ROOT / "reservo" / "gunicorn_conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {key: config.get(key) for key in ("workers", "threads", "worker_class", "bind")}


def stop_process(process: subprocess.Popen[Any], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process's group, wait up to `grace_s`, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=10)


def run_checked(args: list[str], env: dict[str, str], log: IO[str], timeout_s: float) -> str:
    """Run a command to completion within `timeout_s`; returns its stdout, raises on failure."""
    result = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    log.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    log.flush()
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}"
        )
    return result.stdout


class Server:
    """gunicorn -c reservo/gunicorn_conf.py reservo.wsgi:application, after migrate and
    collectstatic, on the settings module `env` names (the benchmark's own)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://{env['HOST']}:{env['PORT']}"

    def prepare(self, log: IO[str]) -> None:
        """migrate and collectstatic side by side: collectstatic does not use the database."""
        commands = (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v0"])
        with ThreadPoolExecutor(len(commands)) as pool:
            running = [
                pool.submit(
                    run_checked, [sys.executable, "manage.py", *command], self.env, log, 600
                )
                for command in commands
            ]
            for started in running:
                started.result()  # raises the first failure

    def start(self) -> None:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [gunicorn, "-c", "reservo/gunicorn_conf.py", "reservo.wsgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        expected = int(gunicorn_config(self.env)["workers"] or 1)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited ({self.process.returncode}); see {self.log_path}"
                )
            if len(self.worker_pids()) >= expected and self._healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready in {READY_TIMEOUT_S} s; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def worker_pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.process.pid).children()]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class DelayProxy:
    """bench/latency.py in a process of its own, in front of the database of `database_url`."""

    def __init__(self, database_url: str, delay_ms: float, log_path: Path) -> None:
        self.target = postgres_address(database_url)
        self.listen, self.url = delayed_endpoint(database_url, free_port())
        self.delay_ms = delay_ms
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.latency",
                    "--listen",
                    self.listen,
                    "--target",
                    self.target,
                    "--delay-ms",
                    str(self.delay_ms),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()  # "ready", or nothing when it failed
        if ready.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"the delay proxy did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=5)
            if self.process.stdout is not None:
                self.process.stdout.close()


class ProcessWatch:
    """Samples the workers' memory in the background; CPU seconds of a set of processes."""

    def __init__(self, server: Server, interval_s: float = 0.25) -> None:
        self.server = server
        self.interval_s = interval_s
        self.rss_max_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pid in self.server.worker_pids():
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
                self.rss_max_bytes = max(self.rss_max_bytes, rss)

    @property
    def rss_max_mb(self) -> float:
        return round(self.rss_max_bytes / 2**20, 1)

    def app_cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.server.worker_pids():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


POSTGRES_PROCESS_NAMES = ("postgres", "postmaster")


def database_cpu_seconds() -> float:
    """CPU seconds used so far by this machine's PostgreSQL servers: every postmaster and
    its processes, with those already ended (counted in the postmaster's children times).
    Zero when the database runs elsewhere."""
    total = 0.0
    for process in psutil.process_iter(["name", "ppid", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] not in POSTGRES_PROCESS_NAMES or times is None:
            continue
        total += times.user + times.system
        try:
            parent = psutil.Process(process.info["ppid"]).name()
        except psutil.Error:
            continue
        if parent not in POSTGRES_PROCESS_NAMES:  # a postmaster: add its ended backends
            total += times.children_user + times.children_system
    return total


def machine_cpu_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core together."""
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total
