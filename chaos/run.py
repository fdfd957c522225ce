"""One chaos run: start the system, load it, inject the faults, check, report."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos import checker, cluster, report
from chaos.database import Sampler, snapshot
from chaos.history import History
from chaos.history import read as read_history
from chaos.instances import AppInstance, app_environment
from chaos.nemesis import KINDS, Nemesis, Timing
from chaos.observations import Fault
from chaos.workload import Client, World, send

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "chaos" / "results"
MARGIN_S = 5.0
RECOVERY_LIMIT_S = 30.0
HOLD_TTL_S = 30


@dataclass(frozen=True)
class Profile:
    name: str
    clients: int
    rounds: int  # each fault kind this many times
    warmup_s: float
    cooldown_s: float
    fault_phase_limit_s: float  # no new fault starts after this
    latency_s: float
    redis_s: float
    read_only_s: float
    instance_down_s: float
    clock_s: float
    gap_s: float


PROFILES = {
    "full": Profile(
        name="full",
        clients=32,
        rounds=2,
        warmup_s=10,
        cooldown_s=10,
        fault_phase_limit_s=420,
        latency_s=8,
        redis_s=5,
        read_only_s=5,
        instance_down_s=3,
        clock_s=10,
        gap_s=4,
    ),
    "short": Profile(
        name="short",
        clients=16,
        rounds=1,
        warmup_s=4,
        cooldown_s=4,
        fault_phase_limit_s=150,
        latency_s=4,
        redis_s=3,
        read_only_s=3,
        instance_down_s=2,
        clock_s=4,
        gap_s=1,
    ),
}


def schedule(profile: Profile, seed: int) -> list[str]:
    """Every kind once per round, in an order of the seed's (the short profile: as listed)."""
    if profile.name == "short":
        return list(KINDS)
    rng = random.Random(seed)
    order: list[str] = []
    for _round in range(profile.rounds):
        kinds = list(KINDS)
        rng.shuffle(kinds)
        if order and kinds[0] == order[-1]:
            kinds.append(kinds.pop(0))
        order += kinds
    return order


def step(message: str) -> None:
    print(f"[chaos {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def manage(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def api(port: int, key: str, method: str, path: str, body: Any = None) -> Any:
    """A setup request, sent until it is answered (the system is not faulted yet)."""
    for _attempt in range(20):
        answer = send(port, method, path, api_key=key, body=body, timeout=30)
        if answer.outcome == "ok":
            return answer.body
        if not answer.retryable:
            raise RuntimeError(f"{method} {path}: {answer.status} {answer.body}")
        time.sleep(0.5)
    raise RuntimeError(f"{method} {path}: no answer")


def create_resources(port: int, key: str, run_id: str) -> dict[str, Any]:
    """Roomy resources (bookings always fit: recovery is measured on them), hot ones
    (a few places, always nearly sold out) and seated ones."""
    resources: dict[str, Any] = {"roomy": [], "hot": [], "seated": {}}
    for number in range(4):
        body = {
            "name": f"Roomy {number}",
            "slug": f"chaos-{run_id}-roomy-{number}",
            "capacity": 1_000_000,
        }
        resources["roomy"].append(api(port, key, "POST", "/api/v1/resources/", body)["id"])
    for number in range(3):
        body = {"name": f"Hot {number}", "slug": f"chaos-{run_id}-hot-{number}", "capacity": 12}
        resources["hot"].append(api(port, key, "POST", "/api/v1/resources/", body)["id"])
    for number in range(2):
        body = {
            "name": f"Seated {number}",
            "slug": f"chaos-{run_id}-seated-{number}",
            "kind": "seated",
            "seats": {"rows": ["A", "B", "C", "D", "E"], "per_row": 12},
        }
        resource = api(port, key, "POST", "/api/v1/resources/", body)["id"]
        seats = api(port, key, "GET", f"/api/v1/resources/{resource}/seats/")
        resources["seated"][resource] = [seat["id"] for seat in seats]
    return resources


@dataclass
class Setup:
    """What the run set up before the load: keys, resources, bounds."""

    manage_key: str
    client_keys: list[str]
    resources: dict[str, Any]
    bounds: dict[str, Any]

    @property
    def resource_ids(self) -> list[int]:
        return [*self.resources["roomy"], *self.resources["hot"], *self.resources["seated"]]


class ChaosRun:
    """One run, start to end; `execute` returns the exit status (1: violations)."""

    def __init__(self, profile: Profile, *, clients: int, seed: int, out: Path) -> None:
        self.profile = profile
        self.clients = clients
        self.seed = seed
        self.out = out
        self.started_at = time.time()
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.run_dir = out / "runs" / self.run_id
        self.run_dir.mkdir(parents=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="reservo-chaos-"))
        self.workdir.chmod(0o755)
        self.external = os.environ.get("DATABASE_URL") or None
        self.postgres = cluster.Postgres(self.workdir, self.external)
        self.redis = cluster.Redis(self.workdir)
        self.pgbouncer = cluster.PgBouncer(self.workdir, self.postgres)
        self.proxy = cluster.Proxy(self.workdir, self.pgbouncer.port)
        self.instances: list[AppInstance] = []
        self.nemesis: Nemesis | None = None
        self.history_path = self.run_dir / "history.jsonl"
        self.client_prefix = f"chaos-{self.run_id}-"

    def execute(self) -> int:
        try:
            setup = self.start()
            limits = checker.Limits(
                request_bound_s=float(setup.bounds["request_timeout_s"]),
                margin_s=MARGIN_S,
                recovery_limit_s=RECOVERY_LIMIT_S,
                expected_faults=frozenset(KINDS),
            )
            world = World(
                instances=[(i.name, i.port) for i in self.instances],
                roomy=setup.resources["roomy"],
                hot=setup.resources["hot"],
                seated=setup.resources["seated"],
                client_timeout_s=limits.hang_after_s + 5,
                resolve_limit_s=120,
            )
            faults, sampler, load = self.load(setup, world)
            return self.check(setup, limits, world, faults, sampler, load)
        finally:
            self.stop()

    def setup_environment(self) -> dict[str, str]:
        """For manage.py and the provisioning: straight to PostgreSQL, not through PgBouncer."""
        return {
            **app_environment(self.postgres.admin_url(), self.redis.url, self.workdir),
            "RESERVO_PGBOUNCER": "0",
        }

    def start(self) -> Setup:
        where = "DATABASE_URL" if self.external else "embedded, own cluster"
        step(f"starting PostgreSQL ({where}), Redis, PgBouncer, the fault proxy in {self.workdir}")
        self.postgres.start()
        self.redis.start()
        self.pgbouncer.start()
        self.proxy.start()
        step("migrating")
        manage(["manage.py", "migrate", "--noinput", "-v0"], self.setup_environment())
        provision = [
            "-m",
            "chaos.provision",
            *("--clients", str(self.clients), "--hold-ttl", str(HOLD_TTL_S)),
            *("--prefix", self.client_prefix),
        ]
        provisioned = json.loads(
            manage(provision, self.setup_environment()).strip().splitlines()[-1]
        )
        user = self.postgres.pgbouncer_target()["user"]
        app_url = f"postgres://{user}@127.0.0.1:{self.proxy.port}/{cluster.DATABASE}"
        app_env = app_environment(app_url, self.redis.url, self.workdir)
        self.instances = [
            AppInstance(name, cluster.free_port(), app_env, self.workdir) for name in ("a", "b")
        ]
        workers = self.instances[0].expected_workers()
        step(f"starting instances a and b ({workers} sync workers each)")
        for instance in self.instances:
            instance.start()
        for instance in self.instances:
            instance.wait_ready()
        return Setup(
            manage_key=provisioned["manage"],
            client_keys=provisioned["clients"],
            resources=create_resources(self.instances[0].port, provisioned["manage"], self.run_id),
            bounds=provisioned["bounds"],
        )

    def load(self, setup: Setup, world: World) -> tuple[list[Fault], Sampler, tuple[float, float]]:
        """The clients under the nemesis's schedule; returns the faults, the sampler and
        when the load started and ended."""
        history = History(self.history_path)
        profile = self.profile
        self.nemesis = Nemesis(
            postgres=self.postgres,
            redis=self.redis,
            proxy=self.proxy,
            instances=self.instances,
            world=world,
            history=history,
            timing=Timing(
                worker_stop_s=2 * setup.bounds["lock_timeout_ms"] / 1000,
                latency_s=profile.latency_s,
                redis_s=profile.redis_s,
                read_only_s=profile.read_only_s,
                instance_down_s=profile.instance_down_s,
                clock_s=profile.clock_s,
                gap_s=profile.gap_s,
                recovery_wait_s=RECOVERY_LIMIT_S,
            ),
            seed=self.seed,
        )
        sampler = Sampler(
            self.postgres.admin_url(), setup.resource_ids, self.run_dir / "samples.jsonl"
        )
        sampler.start()
        clients = [
            Client(number, key, world, history, self.seed * 1000 + number)
            for number, key in enumerate(setup.client_keys)
        ]
        started = time.time()
        step(f"{len(clients)} clients booking; warm-up {profile.warmup_s:g} s")
        for client in clients:
            client.start()
        time.sleep(profile.warmup_s)
        plan = schedule(profile, self.seed)
        step(f"nemesis: {len(plan)} faults")
        faults = self.nemesis.run(plan, stop_at=time.time() + profile.fault_phase_limit_s)
        step(f"cool-down {profile.cooldown_s:g} s, then the clients finish what they started")
        time.sleep(profile.cooldown_s)
        world.stopping.set()
        for client in clients:
            client.join(world.resolve_limit_s + world.client_timeout_s + 10)
        ended = time.time()
        sampler.stop()
        history.close()
        return faults, sampler, (started, ended)

    def check(
        self,
        setup: Setup,
        limits: checker.Limits,
        world: World,
        faults: list[Fault],
        sampler: Sampler,
        load: tuple[float, float],
    ) -> int:
        step("checking")
        reconcile = subprocess.run(
            [sys.executable, "manage.py", "reconcile"],
            cwd=ROOT,
            env=self.setup_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        final = snapshot(
            self.postgres.admin_url(),
            setup.resource_ids,
            self.client_prefix,
            (reconcile.returncode, (reconcile.stdout + reconcile.stderr).strip()[-500:]),
        )
        (self.run_dir / "snapshot.json").write_text(json.dumps(dataclasses.asdict(final)))
        assert self.nemesis is not None
        skipped = self.nemesis.skipped()
        result = checker.check(
            read_history(self.history_path),
            final,
            sampler.samples,
            faults,
            limits,
            skipped=skipped,
            worker_timeouts=[line for i in self.instances for line in i.worker_timeouts()],
        )
        data = report.results(
            result.figures,
            result.faults,
            result.recovery_s,
            result.violations,
            {
                "profile": self.profile.name,
                "seed": self.seed,
                "clients": self.clients,
                "workers_per_instance": self.instances[0].expected_workers(),
                "started_at": report.iso(self.started_at),
                "started_epoch": load[0],
                "duration_s": round(load[1] - load[0], 1),
                "database": "DATABASE_URL" if self.external else "embedded, own cluster",
                "request_bound_s": limits.request_bound_s,
                "margin_s": limits.margin_s,
                "client_timeout_s": world.client_timeout_s,
                "recovery_limit_s": limits.recovery_limit_s,
                "bounds": setup.bounds,
                "hold_ttl_s": HOLD_TTL_S,
                "samples": len(sampler.samples),
                "samples_missed": sampler.failed,
                "skipped": skipped,
                "history": str(self.history_path.relative_to(self.out)),
            },
        )
        report.write(self.out, data, self.history_path)
        step(
            f"{data['operations']} operations, {data['acknowledged']} acknowledged, "
            f"{data['unknown']} unknown, {len(data['faults'])} faults, "
            f"{len(data['violations'])} violations: {self.out / 'latest.md'}"
        )
        for found in data["violations"][:20]:
            print(f"  VIOLATION {found['kind']}: {found['detail']}", flush=True)
        return 1 if data["violations"] else 0

    def stop(self) -> None:
        """Heal, stop every server, keep the logs, remove the work directory."""
        if self.nemesis is not None:
            self.nemesis.heal_everything()
        for instance in self.instances:
            instance.stop()
        self.proxy.stop()
        self.pgbouncer.stop()
        self.redis.stop()
        logs = [path for instance in self.instances for path in instance.log_files]
        logs += [
            self.workdir / "redis.log",
            self.workdir / "proxy.log",
            self.workdir / "pgbouncer" / "pgbouncer.log",
            self.workdir / "pg" / "server.log",
        ]
        cluster.copy_logs(logs, self.run_dir / "logs")
        self.postgres.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
