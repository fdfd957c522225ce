"""The benchmark run: environment, server, scenarios in alternating rounds, checks, report.

Order of a run: a fresh benchmark database (embedded default) or the given DATABASE_URL;
migrate, collectstatic and gunicorn as `make serve` does, but with the benchmark's own
settings module (bench.settings: the project's, with the floor and reference views
routed); a warm-up; the round trips each booking path holds the resource lock for;
`rounds` rounds of the base scenarios, each round in a rotated order so machine noise
spreads over all of them; the bookings again with a delay added between the app and
PostgreSQL (a second server, through bench/latency.py); then the reservations table is
filled to a million rows and `growth` alternates with `floor_post`. Every process
started here is stopped in `finally`.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from bench import report
from bench.latency import round_trip_ms
from bench.load import LoadSpec, run_locust, run_pgbench
from bench.profile import DatabaseWaits
from bench.report import RoundFigures, Sample
from bench.server import (
    ROOT,
    DelayProxy,
    ProcessWatch,
    Server,
    database_cpu_seconds,
    free_port,
    gunicorn_config,
    run_checked,
)
from bench.server import machine_cpu_busy_seconds as machine_cpu
from reservo import embedded

BENCH_DATABASE = "reservo_bench"
SETTINGS_MODULE = "bench.settings"
# The delayed bookings run after the base rounds on a server of their own; the growth
# scenario last, on the filled table.
ALL_SCENARIOS = report.SCENARIO_ORDER
BASE_SCENARIOS = tuple(
    name for name in ALL_SCENARIOS if name != "growth" and name not in report.LATENCY_SCENARIOS
)
# Every run measures every scenario, the references included; only such a run writes
# bench/results/latest.*.
REQUIRED_SCENARIOS = ALL_SCENARIOS
REFERENCE_PATHS = {
    "naive_book": "/bench/reference/naive/",
    "bare_book": "/bench/reference/bare/",
}
API_SCENARIOS = {"hot_book", "hot_book_1ms", "spread_book", "availability_get", "growth"}


def book_path(scenario: str) -> str:
    """Where a booking scenario's clients post: a reference view's path, or "" (the API)."""
    return REFERENCE_PATHS.get(scenario.removesuffix(report.LATENCY_SUFFIX), "")


@dataclass(frozen=True)
class Plan:
    """What a run measures; `quick()` and `full()` are the two `make bench` variants."""

    quick: bool
    rounds: int
    duration_s: float
    pgbench_seconds: int
    latency_rounds: int
    clients: int = 64
    hot_capacity: int = 3000
    refusals: int = 1000
    spread_resources: int = 1000
    growth_rows: int = 1_000_000
    booking_time_bound_s: float = 120.0
    processes: int = 1
    background_users: int = 2
    background_rate: float = 5.0
    # Added to every chunk either way between the app and PostgreSQL (the _1ms scenarios),
    # whose resource is smaller: each booking there waits for several delayed round trips.
    database_delay_ms: float = 1.0
    delayed_capacity: int = 1000
    delayed_refusals: int = 300
    only: tuple[str, ...] = REQUIRED_SCENARIOS

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            rounds=1,
            duration_s=5.0,
            pgbench_seconds=5,
            latency_rounds=1,
            booking_time_bound_s=60,
        )

    @classmethod
    def full_plan(cls) -> Plan:
        return cls(quick=False, rounds=3, duration_s=10.0, pgbench_seconds=10, latency_rounds=2)


@dataclass
class RoundResult:
    figures: RoundFigures
    wall_s: float
    generator_cpu_s: float
    app_cpu_s: float
    database_cpu_s: float
    machine_busy_s: float
    checks: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _bench_database_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def _empty_database() -> None:
    """Start from no resources, reservations or clients (the benchmark's own database only).

    TRUNCATE fires no row trigger, and it empties the resources with their reservations,
    so the counters stay exact.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE resources_resource, bookings_apiclient CASCADE")
        cursor.execute("VACUUM ANALYZE")


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


class Bench:
    def __init__(self, plan: Plan, results_dir: Path, profile: str | None = None) -> None:
        self.plan = plan
        self.results_dir = results_dir
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_dir = results_dir / "runs" / stamp
        self.profile = profile
        self.rounds: dict[str, list[RoundResult]] = {}
        self.skipped: dict[str, str] = {}
        self.notes: dict[str, Any] = {}
        self.started_services: list[str] = []
        self.server: Server | None = None
        self.watch: ProcessWatch | None = None
        self.api_key = ""
        self.api_client_id: int | None = None
        self.env: dict[str, str] = {}
        self.own_database = False
        self.database_waits: DatabaseWaits | None = None
        self.lock_counts: dict[str, dict[str, Any]] = {}
        self.log = open(os.devnull, "w")  # replaced in run()  # noqa: SIM115

    # Environment ------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if not env.get("DATABASE_URL"):
            if embedded.ensure_postgres():
                self.started_services.append("postgres")
            embedded.create_database(embedded.data_dir() / "run", BENCH_DATABASE)
            env["DATABASE_URL"] = _bench_database_url(embedded.postgres_url())
            self.own_database = True
            self.notes["database"] = f"embedded PostgreSQL, database {BENCH_DATABASE} (emptied)"
        else:
            self.notes["database"] = "DATABASE_URL (as given)"
        if not env.get("REDIS_URL"):
            if embedded.ensure_redis():
                self.started_services.append("redis")
            env["REDIS_URL"] = embedded.redis_url()
        env.setdefault("RESERVO_CACHE_PREFIX", "bench")
        # One API client plays every customer: its rate limits stay on (their cost is part of
        # each request) but are set far above what a run can send.
        env.setdefault("RESERVO_THROTTLE_READ", "100000000/min")
        env.setdefault("RESERVO_THROTTLE_BOOK", "100000000/min")
        env["HOST"] = "127.0.0.1"
        env["PORT"] = str(free_port())
        env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
        return env

    def _setup_django(self) -> None:
        os.environ.update(self.env)
        import django

        django.setup()

    def _create_api_client(self) -> None:
        command = ROOT / "bookings" / "management" / "commands" / "create_api_client.py"
        if not command.exists():
            self.notes["api_client"] = "manage.py create_api_client is missing"
            return
        name = f"bench-{uuid.uuid4().hex[:8]}"
        output = run_checked(
            [sys.executable, "manage.py", "create_api_client", name, "--scopes", "book,manage"],
            self.env,
            self.log,
            120,
        )
        self.api_key = output.strip().splitlines()[-1].strip()
        from bookings.models import ApiClient

        self.api_client_id = (
            ApiClient.objects.filter(name=name).values_list("pk", flat=True).first()
        )

    # HTTP helpers ---------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, str]:
        assert self.server is not None
        headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {self.api_key}"}
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (the URL is 127.0.0.1, built here)
            self.server.url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)

    def _probe_api(self) -> str | None:
        """None when booking and reading work through the API; otherwise why not."""
        if not self.api_key:
            return self.notes.get("api_client", "no API key")
        from bench.data import UNLIMITED_CAPACITY, resources_create

        (probe,) = resources_create("probe", 1, UNLIMITED_CAPACITY)
        self.notes["probe_resource"] = probe
        status, body = self._request(
            "POST", "/api/v1/reservations/", {"resource": probe, "quantity": 1}
        )
        if status != 201:
            return f"POST /api/v1/reservations/ answered {status}: {body[:200]}"
        status, body = self._request("GET", f"/api/v1/resources/{probe}/")
        if status != 200:
            return f"GET /api/v1/resources/{{id}}/ answered {status}: {body[:200]}"
        return None

    def _warm_up(self, api: bool) -> None:
        """Every worker imports and connects before anything is measured."""
        probe = self.notes.get("probe_resource")
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/bench/floor/get/", None),
            ("POST", "/bench/floor/post/", {"resource": 1, "quantity": 1}),
        ]
        if api and probe:
            calls += [
                ("GET", f"/api/v1/resources/{probe}/", None),
                ("POST", "/api/v1/reservations/", {"resource": probe, "quantity": 1}),
                *(
                    ("POST", path, {"resource": probe, "quantity": 1})
                    for path in REFERENCE_PATHS.values()
                ),
            ]

        def worker() -> None:
            for _ in range(10):
                for method, path, body in calls:
                    self._request(method, path, body)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    # Scenarios ------------------------------------------------------------------------

    def _measure(
        self, name: str, body: Callable[[], tuple[list[Sample], float, dict[str, Any]]]
    ) -> RoundResult:
        """Run one scenario round, with the app's and the machine's CPU around it.

        A server that died meanwhile (stopped from outside) is started again and the round
        is measured once more; its broken samples are not kept.
        """
        for attempt in range(2):
            self._ensure_server()
            result = self._measure_once(name, body)
            assert self.server is not None and self.server.process is not None
            if self.server.process.poll() is None or attempt == 1:
                break
            self.notes.setdefault("server_restarts", []).append(name)
            self._progress(f"the server stopped during {name}: measuring it again")
        self.rounds.setdefault(name, []).append(result)
        return result

    def _ensure_server(self) -> None:
        assert self.server is not None
        if self.server.process is None or self.server.process.poll() is not None:
            self._progress("the server is not running: starting it again")
            self.server.start()
            self._warm_up(api=not self.skipped)

    def _measure_once(
        self, name: str, body: Callable[[], tuple[list[Sample], float, dict[str, Any]]]
    ) -> RoundResult:
        assert self.watch is not None
        app_before = self.watch.app_cpu_seconds()
        database_before = database_cpu_seconds()
        busy_before, _total = machine_cpu()
        started = time.monotonic()
        profiler = self._start_profiler(name)
        try:
            samples, generator_cpu, extra = body()
        finally:
            self._stop_profiler(profiler, name)
        wall = time.monotonic() - started
        busy_after, _total = machine_cpu()
        result = RoundResult(
            figures=RoundFigures.of(samples),
            wall_s=wall,
            generator_cpu_s=generator_cpu,
            app_cpu_s=max(0.0, self.watch.app_cpu_seconds() - app_before),
            database_cpu_s=max(0.0, database_cpu_seconds() - database_before),
            machine_busy_s=busy_after - busy_before,
            extra=extra,
        )
        return result

    def _locust(self, spec: LoadSpec, name: str) -> tuple[list[Sample], float, dict[str, Any]]:
        assert self.server is not None
        index = len(self.rounds.get(name, []))
        from django.db import connections

        connections.close_all()
        result = run_locust(spec, self.server.url, self.run_dir / f"{name}.{index}")
        return result.samples, result.generator_cpu_s, {"locust_exit_codes": result.exit_codes}

    def _http_spec(self, scenario: str, **kwargs: Any) -> LoadSpec:
        return LoadSpec(
            scenario=scenario,
            users=self.plan.clients,
            processes=self.plan.processes,
            time_bound_s=self.plan.duration_s,
            api_key=self.api_key,
            **kwargs,
        )

    def floor(self, name: str) -> None:
        spec = self._http_spec(name)
        self._measure(name, lambda: self._locust(spec, name))

    def pgbench_book(self) -> None:
        from bench.data import UNLIMITED_CAPACITY, booking_checks, resources_create

        (resource,) = resources_create("pgbench", 1, UNLIMITED_CAPACITY)
        config = self.notes["server"]
        clients = int(config["db_concurrency"])

        def body() -> tuple[list[Sample], float, dict[str, Any]]:
            result = run_pgbench(
                embedded.pg_tool("pgbench"),
                self.env["DATABASE_URL"],
                clients,
                self.plan.pgbench_seconds,
                {"rid": str(resource)},
                self.run_dir / f"pgbench_book.{len(self.rounds.get('pgbench_book', []))}",
            )
            return (
                result.samples,
                result.generator_cpu_s,
                {
                    "pgbench_tps": result.tps,
                    "pgbench_failed": result.failed,
                    "pgbench_clients": clients,
                },
            )

        measured = self._measure("pgbench_book", body)
        measured.checks = booking_checks([resource], len(measured.figures.samples))

    def booking(
        self, name: str, resources: int, capacity_each: int, refusals: int | None = None
    ) -> None:
        from bench.data import booking_checks, resources_create

        ids = resources_create(name, resources, capacity_each)
        if refusals is None:
            refusals = self.plan.refusals
        spec = replace(
            self._http_spec("book", resource_ids=ids, refusals=refusals),
            time_bound_s=self.plan.booking_time_bound_s,
            book_path=book_path(name),
        )
        measured = self._measure(name, lambda: self._locust(spec, name))
        created = sum(1 for s in measured.figures.samples if s.status == "201")
        measured.checks = booking_checks(ids, created)
        # The run goes on until every place is sold; short of that it hit its time bound.
        measured.checks["sold_out"] = measured.checks["sold"] == measured.checks["capacity"]

    def availability_get(self) -> None:
        from bench.data import UNLIMITED_CAPACITY, booking_checks, resources_create

        (resource,) = resources_create("availability", 1, UNLIMITED_CAPACITY)
        spec = self._http_spec(
            "availability",
            resource_ids=[resource],
            background_users=self.plan.background_users,
            background_resource=resource,
            background_rate=self.plan.background_rate,
        )
        collected: list[Sample] = []

        def body() -> tuple[list[Sample], float, dict[str, Any]]:
            samples, cpu, extra = self._locust(spec, "availability_get")
            collected.extend(samples)
            return samples, cpu, extra

        measured = self._measure("availability_get", body)
        background = [s for s in collected if s.kind == report.BACKGROUND]
        created = sum(1 for s in background if s.status == "201")
        measured.checks = booking_checks([resource], created)
        measured.extra["background_bookings"] = len(background)
        measured.extra["background_statuses"] = dict(
            sorted(Counter(s.status for s in background).items())
        )

    # Profiling ------------------------------------------------------------------------

    def _start_profiler(self, name: str) -> list[subprocess.Popen[bytes]]:
        if self.profile != name or self.rounds.get(name) or self.server is None:
            return []
        self.database_waits = DatabaseWaits(self.env["DATABASE_URL"])
        self.database_waits.start()
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        processes = []
        for pid in self.server.worker_pids():
            out = self.run_dir / f"profile.{name}.{pid}.txt"
            processes.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "250",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--duration",
                        "300",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        return processes

    def _stop_profiler(self, processes: list[subprocess.Popen[bytes]], name: str) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if processes:
            from bench.profile import summarize_profiles

            waits = ""
            if self.database_waits is not None:
                self.database_waits.stop()
                waits = self.database_waits.summary() + "\n"
            files = sorted(self.run_dir.glob(f"profile.{name}.*.txt"))
            text = waits + summarize_profiles(files)
            (self.results_dir / f"profile-{name}.txt").write_text(text)

    # The run ----------------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        return name in self.plan.only and name not in self.skipped

    def _run_base_round(self, round_index: int) -> None:
        order = list(BASE_SCENARIOS)
        shift = round_index % len(order)
        order = order[shift:] + order[:shift]
        actions: dict[str, Callable[[], None]] = {
            "floor_post": lambda: self.floor("floor_post"),
            "floor_get": lambda: self.floor("floor_get"),
            "pgbench_book": self.pgbench_book,
            "naive_book": lambda: self.booking("naive_book", 1, self.plan.hot_capacity),
            "bare_book": lambda: self.booking("bare_book", 1, self.plan.hot_capacity),
            "hot_book": lambda: self.booking("hot_book", 1, self.plan.hot_capacity),
            "spread_book": lambda: self.booking(
                "spread_book",
                self.plan.spread_resources,
                max(1, self.plan.hot_capacity // self.plan.spread_resources),
            ),
            "availability_get": self.availability_get,
        }
        for name in order:
            if self._wanted(name):
                self._progress(f"round {round_index + 1}: {name}")
                self._guarded(name, actions[name])

    def _guarded(self, name: str, action: Callable[[], None]) -> None:
        """A scenario that fails is reported as such; the others still run."""
        try:
            action()
        except Exception as exc:
            self.log.write(f"{name} failed:\n{traceback.format_exc()}\n")
            self.log.flush()
            self.skipped[name] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            self._progress(f"{name} failed: {exc!r:.300}")

    def _run_delayed(self) -> None:
        """The bookings again, on a server whose database connections go through a proxy
        that delays every chunk either way (bench/latency.py): what each round trip made
        under the resource lock costs when the database is not on the same machine."""
        names = [name for name in report.LATENCY_SCENARIOS if self._wanted(name)]
        if not names:
            return
        direct = self.server
        assert direct is not None and self.watch is not None
        proxy = DelayProxy(
            self.env["DATABASE_URL"], self.plan.database_delay_ms, self.run_dir / "proxy.log"
        )
        self._progress(
            f"a {self.plan.database_delay_ms:g} ms delay each way between app and PostgreSQL"
        )
        proxy.start()
        delayed = Server(
            {**self.env, "DATABASE_URL": proxy.url, "PORT": str(free_port())},
            self.run_dir / "gunicorn-delayed.log",
        )
        try:
            self.notes["db_latency"] = {
                "delay_ms_each_way": self.plan.database_delay_ms,
                "round_trip_ms_direct": round_trip_ms(self.env["DATABASE_URL"]),
                "round_trip_ms_proxied": round_trip_ms(proxy.url),
            }
            direct.stop()
            self.server = self.watch.server = delayed
            delayed.start()
            self._warm_up(api=not self.skipped)
            for round_index in range(self.plan.latency_rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    self._progress(f"delayed round {round_index + 1}: {name}")
                    self._guarded(
                        name,
                        functools.partial(
                            self.booking,
                            name,
                            1,
                            self.plan.delayed_capacity,
                            self.plan.delayed_refusals,
                        ),
                    )
        finally:
            delayed.stop()
            proxy.stop()
            self.server = self.watch.server = direct
        direct.start()
        self._warm_up(api=not self.skipped)

    def _count_lock_round_trips(self) -> None:
        """One booking by each path, its statements under the resource lock counted."""
        from bench.data import UNLIMITED_CAPACITY, resources_create
        from bench.roundtrips import count_bookings

        (resource,) = resources_create("round-trips", 1, UNLIMITED_CAPACITY)
        self.lock_counts = count_bookings(resource, self.api_key)

    def _run_growth(self) -> None:
        from bench.data import database_settle, reservations_bulk_fill, reservations_count

        self._progress(f"filling bookings_reservation to {self.plan.growth_rows:,} rows")
        started = time.monotonic()
        added = reservations_bulk_fill(self.plan.growth_rows)
        checkpointed = database_settle()
        if not checkpointed:
            self._progress(
                "no CHECKPOINT after the fill (the role may not): growth may pay its writes"
            )
        self.notes["growth_fill"] = {
            "rows_added": added,
            "rows_total": reservations_count(),
            "checkpointed": checkpointed,
            "seconds": round(time.monotonic() - started, 1),
        }
        for round_index in range(self.plan.rounds):
            self._progress(f"growth round {round_index + 1}")
            self._guarded("growth", lambda: self.booking("growth", 1, self.plan.hot_capacity))
            if self._wanted("floor_post"):
                self._guarded("floor_post", lambda: self.floor("floor_post"))

    def _progress(self, text: str) -> None:
        print(f"[bench {datetime.now(UTC):%H:%M:%S}] {text}", flush=True)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.run_dir / "harness.log", "w")  # noqa: SIM115
        try:
            self.env = self._environment()
            config = gunicorn_config(self.env)
            threads = int(config.get("threads") or 1)
            self.notes["server"] = {
                **config,
                "db_concurrency": int(config["workers"]) * threads,
            }
            self.server = Server(self.env, self.run_dir / "gunicorn.log")
            self._progress("migrate, collectstatic (as make serve)")
            self.server.prepare(self.log)
            self._setup_django()
            if self.own_database:
                _empty_database()
            self.notes["postgres"] = self._postgres_version()
            self._create_api_client()
            self._progress(
                f"gunicorn {config['worker_class']} {config['workers']}x{threads} on {self.server.url}"
            )
            self.server.start()
            self.watch = ProcessWatch(self.server)
            self.watch.start()
            problem = self._probe_api() if API_SCENARIOS & set(self.plan.only) else None
            if problem:
                self._progress(f"API scenarios skipped: {problem}")
                for name in API_SCENARIOS:
                    self.skipped[name] = problem
            self._warm_up(api=problem is None)
            self._guarded("lock_round_trips", self._count_lock_round_trips)
            for round_index in range(self.plan.rounds):
                self._run_base_round(round_index)
            self._guarded("delayed", self._run_delayed)
            if self._wanted("growth"):
                self._guarded("growth", self._run_growth)
        finally:
            self._shutdown()
        return self._results(time.monotonic() - started)

    def _shutdown(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.server is not None:
            self.server.stop()
        if "django" in sys.modules and self.env:
            from django.apps import apps

            if apps.ready:
                from django.db import connections

                connections.close_all()
        if "postgres" in self.started_services:
            embedded.stop_postgres()
        if "redis" in self.started_services:
            embedded.stop_redis()
        self.log.close()

    # Results ------------------------------------------------------------------------------

    def _results(self, duration_s: float) -> dict[str, Any]:
        scenarios: dict[str, Any] = {}
        for name, rounds in self.rounds.items():
            summary = report.summarize(name, [r.figures for r in rounds])
            wall = sum(r.wall_s for r in rounds) or 1e-9
            checks = [r.checks for r in rounds if r.checks]
            summary.update(
                {
                    "generator_cpu_cores": round(sum(r.generator_cpu_s for r in rounds) / wall, 2),
                    "app_cpu_cores": round(sum(r.app_cpu_s for r in rounds) / wall, 2),
                    "database_cpu_cores": round(sum(r.database_cpu_s for r in rounds) / wall, 2),
                    "machine_busy_cores": round(sum(r.machine_busy_s for r in rounds) / wall, 2),
                    "rounds": len(rounds),
                }
            )
            if checks:
                summary["oversold"] = sum(c["oversold"] for c in checks)
                summary["checks_ok"] = all(
                    c["oversold"] == 0
                    and c["rows_match_201"]
                    and c["counters_match_rows"]
                    and c["reconcile_ok"]
                    and c.get("sold_out", True)
                    for c in checks
                )
                summary["checks"] = checks
            extras = [r.extra for r in rounds if r.extra]
            if extras:
                summary["details"] = extras
            scenarios[name] = summary
        server = self.notes.get("server", {})
        return {
            "schema": 1,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": self.plan.quick,
            "rounds": self.plan.rounds,
            "duration_s": round(duration_s, 1),
            "machine": {**_machine(), "postgres": self.notes.get("postgres", "?")},
            "server": server,
            "load_generator": {
                "tool": f"locust {metadata.version('locust')} FastHttpUser (closed loop, no think time)",
                "clients": self.plan.clients,
                "processes": self.plan.processes,
            },
            "plan": {k: v for k, v in asdict(self.plan).items() if k != "only"},
            "scenarios": scenarios,
            "skipped": self.skipped,
            "lock_round_trips": self.lock_counts,
            "notes": {k: v for k, v in self.notes.items() if k not in ("server", "postgres")},
            "worker_rss_mb_max": self.watch.rss_max_mb if self.watch else None,
        }

    def _postgres_version(self) -> str:
        try:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                row = cursor.fetchone()
            return str(row[0]) if row else "?"
        except Exception:
            return "?"


def is_complete(plan: Plan, measured: Collection[str], interrupted: bool = False) -> bool:
    """Whether a run measured every scenario: then it writes bench/results/latest.*."""
    required = set(REQUIRED_SCENARIOS)
    return not interrupted and required <= set(plan.only) and required <= set(measured)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(plan: Plan, results_dir: Path, profile: str | None = None) -> int:
    """Run, write the report, print the table. A partial run (--only, a scenario that
    failed, Ctrl-C or SIGTERM) writes its report in its own run directory and leaves
    latest.* alone."""
    bench = Bench(plan, results_dir, profile)
    interrupted = False
    # SIGTERM stops a run as Ctrl-C does: every process it started is stopped first.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = bench.run()
    except KeyboardInterrupt:
        interrupted = True
        results = bench._results(0.0)
    complete = is_complete(plan, results["scenarios"], interrupted)
    target = results_dir if complete else bench.run_dir
    table = report.write_all(results, target)
    print(table)
    print(f"Written: {target / 'latest.json'}, latest.md, latest.png (run files: {bench.run_dir})")
    return 130 if interrupted else 0
