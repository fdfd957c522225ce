"""Load generators: locust processes for HTTP scenarios, pgbench for the plain SQL booking.

Both are bounded in time and report their own CPU time (from the kernel's accounting of
each child), so the report can show whether the generator was the bottleneck.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Sample, parse_samples
from bench.server import ROOT

READY_TIMEOUT_S = 60
GO_DELAY_S = 0.3


@dataclass
class LoadSpec:
    """One HTTP scenario as the locust processes run it (see bench/locustfile.py)."""

    scenario: str
    users: int
    processes: int
    time_bound_s: float
    api_key: str = ""
    resource_ids: list[int] = field(default_factory=list)
    refusals: int = 0
    background_users: int = 0
    background_resource: int = 0
    background_rate: float = 0.0
    # Where the main users book: a bench-only reference view (bench/reference.py); empty
    # for the API.
    book_path: str = ""


@dataclass
class LoadResult:
    samples: list[Sample]
    generator_cpu_s: float
    wall_s: float
    exit_codes: list[int]


def _wait_all(pids: list[int], deadline: float) -> tuple[dict[int, int], float]:
    """Reap the children by pid until `deadline`; (exit codes, CPU seconds they used)."""
    codes: dict[int, int] = {}
    cpu = 0.0
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid in codes:
                continue
            reaped, status, usage = os.wait4(pid, os.WNOHANG)
            if reaped:
                codes[pid] = os.waitstatus_to_exitcode(status)
                cpu += usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    return codes, cpu


def _kill_groups(pids: list[int], reaped: dict[int, int]) -> None:
    for pid in pids:
        if pid not in reaped:
            try:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def run_locust(spec: LoadSpec, host: str, workdir: Path) -> LoadResult:
    """Start `spec.processes` standalone locust processes, release them together, collect."""
    workdir.mkdir(parents=True, exist_ok=True)
    go_file = workdir / "go"
    go_file.unlink(missing_ok=True)
    pids: list[int] = []
    samples_files: list[Path] = []
    ready_files: list[Path] = []
    shares = [spec.users // spec.processes] * spec.processes
    for index in range(spec.users % spec.processes):
        shares[index] += 1
    refusal_shares = [-(-spec.refusals // spec.processes)] * spec.processes
    try:
        for index, users in enumerate(shares):
            background = spec.background_users if index == 0 else 0
            samples_file = workdir / f"samples.{index}.csv"
            ready_file = workdir / f"ready.{index}"
            samples_file.unlink(missing_ok=True)
            ready_file.unlink(missing_ok=True)
            env = {
                **os.environ,
                "BENCH_SCENARIO": spec.scenario,
                "BENCH_API_KEY": spec.api_key,
                "BENCH_RESOURCE_IDS": ",".join(map(str, spec.resource_ids or [0])),
                "BENCH_PROCESS_INDEX": str(index),
                "BENCH_PROCESSES": str(spec.processes),
                "BENCH_DURATION_S": str(spec.time_bound_s),
                "BENCH_REFUSALS": str(refusal_shares[index]),
                "BENCH_SAMPLES_FILE": str(samples_file),
                "BENCH_GO_FILE": str(go_file),
                "BENCH_READY_FILE": str(ready_file),
                "BENCH_BACKGROUND_USERS": str(background),
                "BENCH_BACKGROUND_RESOURCE": str(spec.background_resource),
                "BENCH_BACKGROUND_RATE": str(spec.background_rate or 1),
                "BENCH_BOOK_PATH": spec.book_path,
                # The server's address is numeric: resolve it in place. gevent's default
                # resolver hands every new connection's lookup to a thread, a fifth of
                # locust's CPU when the server closes each connection (sync workers).
                "GEVENT_RESOLVER": os.environ.get("GEVENT_RESOLVER", "block"),
            }
            classes = ["BenchUser"] + (["BackgroundBooker"] if background else [])
            args = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--users",
                str(users + background),
                "--spawn-rate",
                str(users + background),
                "--run-time",
                f"{int(spec.time_bound_s + READY_TIMEOUT_S + 10)}s",
                "--stop-timeout",
                "15",
                "--host",
                host,
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--exit-code-on-error",
                "0",
                *classes,
            ]
            with open(workdir / f"locust.{index}.log", "w") as log:
                process = subprocess.Popen(
                    args,
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            pids.append(process.pid)
            samples_files.append(samples_file)
            ready_files.append(ready_file)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(f.exists() for f in ready_files):
            if time.monotonic() > deadline:
                raise RuntimeError(f"locust processes not ready in {READY_TIMEOUT_S} s ({workdir})")
            time.sleep(0.02)
        started = time.monotonic()
        go_file.write_text(f"{time.time() + GO_DELAY_S:.6f}")
        codes, cpu = _wait_all(pids, started + spec.time_bound_s + 60)
        wall = time.monotonic() - started
    finally:
        reaped = locals().get("codes", {})
        _kill_groups(pids, reaped)
    samples: list[Sample] = []
    for path in samples_files:
        if path.exists():
            samples += parse_samples(path.read_text().splitlines())
    return LoadResult(samples, cpu, wall, [codes.get(pid, -9) for pid in pids])


# pgbench ----------------------------------------------------------------------------

TPS_LINE = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
FAILED_LINE = re.compile(r"number of failed transactions: (\d+)")


@dataclass
class PgbenchResult:
    samples: list[Sample]
    tps: float
    failed: int
    generator_cpu_s: float
    output: str


def run_pgbench(
    pgbench: str,
    database_url: str,
    clients: int,
    seconds: int,
    variables: dict[str, str],
    workdir: Path,
) -> PgbenchResult:
    """bench/booking.sql by `clients` connections for `seconds`; per-transaction latencies."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("pgbench_log*"):
        old.unlink()
    args = [
        pgbench,
        "--no-vacuum",
        "--protocol=simple",
        f"--client={clients}",
        f"--jobs={min(clients, os.cpu_count() or 1)}",
        f"--time={seconds}",
        f"--file={ROOT / 'bench' / 'booking.sql'}",
        "--log",
        f"--log-prefix={workdir / 'pgbench_log'}",
        *[f"--define={name}={value}" for name, value in variables.items()],
        database_url,
    ]
    with open(workdir / "pgbench.out", "w") as out:
        process = subprocess.Popen(
            args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        codes: dict[int, int] = {}
        cpu = 0.0
        try:
            codes, cpu = _wait_all([process.pid], time.monotonic() + seconds + 60)
        finally:
            _kill_groups([process.pid], codes)
    output = (workdir / "pgbench.out").read_text()
    if codes.get(process.pid) != 0:
        raise RuntimeError(f"pgbench failed:\n{output[-2000:]}")
    samples = []
    for log in workdir.glob("pgbench_log*"):
        for line in log.read_text().splitlines():
            # client transaction latency_us script epoch_s epoch_us
            parts = line.split()
            if len(parts) >= 6:
                end = int(parts[4]) + int(parts[5]) / 1e6
                latency_ms = int(parts[2]) / 1000
                samples.append(Sample(end - latency_ms / 1000, latency_ms, "ok"))
    tps = float(match.group(1)) if (match := TPS_LINE.search(output)) else 0.0
    failed = int(match.group(1)) if (match := FAILED_LINE.search(output)) else 0
    return PgbenchResult(samples, tps, failed, cpu, output)
