"""The nemesis: faults injected on a schedule, under load, each healed and logged with
its start and end.

One fault at a time. After each heal it waits for a booking sent after the heal to be
acknowledged (the checker measures that recovery from the history), then for a gap.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from psycopg import sql

from chaos import processes
from chaos.cluster import Postgres, Proxy, Redis, faketime_library
from chaos.database import connect
from chaos.history import History
from chaos.instances import AppInstance
from chaos.observations import Fault
from chaos.workload import World

KINDS = (
    "worker_kill",
    "instance_kill",
    "postgres_restart_immediate",
    "postgres_restart_fast",
    "backend_terminate",
    "worker_stop_holding_lock",
    "redis_pause",
    "redis_down",
    "db_latency",
    "db_blackhole",
    "clock_skew",
    "db_read_only",
)
CLOCK_SHIFT = "+1h"
LATENCY_ROUND_TRIP_MS = 200
BLACKHOLE_S = 5.0
# The transactions of the app's sessions that hold a resource's row lock: SELECT ... FOR
# UPDATE (every write locks the resource first) takes ROW SHARE on the table.
LOCK_HOLDERS_SQL = """
    SELECT a.pid, a.application_name, a.xact_start
      FROM pg_locks l
      JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'relation'
       AND l.relation = 'resources_resource'::regclass
       AND l.mode = 'RowShareLock'
       AND l.granted
       AND a.datname = current_database()
       AND a.application_name LIKE 'reservo - %%'
"""
STILL_HOLDING_SQL = (
    LOCK_HOLDERS_SQL + " AND a.pid = %s AND a.xact_start = %s AND a.application_name = %s"
)
BLOCKED_BY_SQL = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
TERMINATE_SQL = """
    SELECT count(pg_terminate_backend(pid)) FROM (
        SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND application_name LIKE 'reservo%%'
         ORDER BY random() LIMIT %s) AS chosen
"""


@dataclass(frozen=True)
class Timing:
    """How long faults last and how the schedule is paced."""

    worker_stop_s: float  # twice the lock bound
    latency_s: float
    redis_s: float
    read_only_s: float
    instance_down_s: float
    clock_s: float
    gap_s: float
    recovery_wait_s: float


class Nemesis:
    def __init__(
        self,
        *,
        postgres: Postgres,
        redis: Redis,
        proxy: Proxy,
        instances: list[AppInstance],
        world: World,
        history: History,
        timing: Timing,
        seed: int,
    ) -> None:
        self.postgres = postgres
        self.redis = redis
        self.proxy = proxy
        self.instances = instances
        self.world = world
        self.history = history
        self.timing = timing
        self.random = random.Random(seed)
        self.faults: list[Fault] = []
        self.injectors: dict[str, Callable[[], Fault]] = {
            "worker_kill": self.worker_kill,
            "instance_kill": self.instance_kill,
            "postgres_restart_immediate": lambda: self.postgres_restart("immediate"),
            "postgres_restart_fast": lambda: self.postgres_restart("fast"),
            "backend_terminate": self.backend_terminate,
            "worker_stop_holding_lock": self.worker_stop_holding_lock,
            "redis_pause": self.redis_pause,
            "redis_down": self.redis_down,
            "db_latency": self.db_latency,
            "db_blackhole": self.db_blackhole,
            "clock_skew": self.clock_skew,
            "db_read_only": self.db_read_only,
        }

    def skipped(self) -> dict[str, str]:
        """Fault kinds this setup cannot inject, and why."""
        reasons = {}
        if not self.postgres.restartable:
            reason = "PostgreSQL is the server of DATABASE_URL, which this run may not restart"
            reasons["postgres_restart_immediate"] = reason
            reasons["postgres_restart_fast"] = reason
        if faketime_library() is None:
            reasons["clock_skew"] = "libfaketime is not installed (Debian package faketime)"
        return reasons

    def run(self, schedule: list[str], stop_at: float) -> list[Fault]:
        skipped = self.skipped()
        for kind in schedule:
            if kind in skipped:
                continue
            if time.time() > stop_at:
                break
            self.history.nemesis(kind, "start")
            fault = self.injectors[kind]()
            self.history.nemesis(
                kind,
                "end",
                at=fault.at,
                healed_at=fault.healed_at,
                detail=fault.detail,
                injected=fault.injected,
            )
            self.faults.append(fault)
            print(
                f"  {kind:<28} {'healed' if fault.injected else 'NOT INJECTED'} after "
                f"{fault.healed_at - fault.at:5.1f} s  {fault.detail}",
                flush=True,
            )
            deadline = time.time() + self.timing.recovery_wait_s
            while not self.world.booking_acknowledged_since(fault.healed_at):
                if time.time() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(self.timing.gap_s)
        return self.faults

    # App processes -------------------------------------------------------------------------

    def worker_kill(self) -> Fault:
        """kill -9 of a web worker in the middle of a request; healed when gunicorn has
        replaced it."""
        instance = self.random.choice(self.running())
        victim, busy = None, False
        deadline = time.time() + 5
        while time.time() < deadline:
            serving = processes.serving(instance.workers(), instance.port)
            if serving:
                victim, busy = self.random.choice(serving), True
                break
            time.sleep(0.005)
        if victim is None:
            victim = self.random.choice(instance.workers())
        at = time.time()
        os.kill(victim, signal.SIGKILL)
        processes.wait_for(
            lambda: (
                victim not in instance.workers()
                and len(instance.workers()) >= instance.expected_workers()
            ),
            60,
            "gunicorn to replace the killed worker",
        )
        state = "in the middle of a request" if busy else "idle (no request caught)"
        return Fault(
            "worker_kill", at, time.time(), f"worker {victim} of instance {instance.name}, {state}"
        )

    def instance_kill(self) -> Fault:
        """kill -9 of a whole instance (its process group), then its restart."""
        instance = self.random.choice(self.running())
        at = time.time()
        instance.kill()
        time.sleep(self.timing.instance_down_s)
        instance.start()
        instance.wait_ready()
        return Fault(
            "instance_kill",
            at,
            time.time(),
            f"instance {instance.name} killed, down {self.timing.instance_down_s:g} s, restarted",
        )

    def worker_stop_holding_lock(self) -> Fault:
        """SIGSTOP of a web worker whose transaction holds a resource's row lock; SIGCONT
        after twice the lock bound.

        The lock holders are read from pg_locks; each one's session, seen through
        PgBouncer, names its client's address in application_name (PgBouncer's
        application_name_add_host): the fault proxy's side of the connection, which the
        proxy maps to the app's side, which /proc maps to a worker. Once the worker is
        stopped, it must still own that connection and the same transaction must still
        hold the lock, or it is let go and another is tried.
        """
        deadline = time.time() + 20
        owners: dict[int, int] = {}
        tries = 0
        with connect(self.postgres.admin_url()) as conn:
            while time.time() < deadline:
                tries += 1
                holders = conn.execute(LOCK_HOLDERS_SQL).fetchall()
                for backend, application_name, xact_start in holders:
                    proxy_port = int(application_name.rsplit(":", 1)[1])
                    worker = owners.get(proxy_port)
                    if worker is None:
                        owners = self.connection_owners()
                        worker = owners.get(proxy_port)
                    if worker is None:
                        continue
                    at = time.time()
                    os.kill(worker, signal.SIGSTOP)
                    try:
                        # Proven while it is stopped: it owns that connection, and the
                        # session behind it is still in the same transaction, lock held.
                        owners = self.connection_owners()
                        still = conn.execute(
                            STILL_HOLDING_SQL, [backend, xact_start, application_name]
                        ).fetchall()
                        if owners.get(proxy_port) != worker or not still:
                            continue
                        time.sleep(self.timing.worker_stop_s / 2)
                        blocked = conn.execute(BLOCKED_BY_SQL, [backend]).fetchone()
                        time.sleep(self.timing.worker_stop_s / 2)
                    finally:
                        os.kill(worker, signal.SIGCONT)
                    return Fault(
                        "worker_stop_holding_lock",
                        at,
                        time.time(),
                        f"worker {worker} stopped {self.timing.worker_stop_s:g} s holding a "
                        f"resource row lock (backend {backend}; "
                        f"{blocked[0] if blocked else 0} sessions waiting on it half-way; "
                        f"caught on try {tries})",
                    )
                time.sleep(0.002)
        now = time.time()
        return Fault(
            "worker_stop_holding_lock",
            now,
            now,
            f"no worker caught holding a row lock in {tries} tries",
            injected=False,
        )

    def connection_owners(self) -> dict[int, int]:
        """Web worker owning each connection the fault proxy forwards, by the proxy's
        upstream port."""
        ports = self.proxy.command(ports=True)["ports"]
        workers = [pid for instance in self.instances for pid in instance.workers()]
        sockets = processes.tcp_sockets()
        by_local_port = {
            connection.local_port: pid
            for pid in workers
            for connection in processes.connections_of(pid, sockets)
            if connection.remote_port == self.proxy.port
        }
        return {
            int(upstream): by_local_port[client]
            for upstream, client in ports.items()
            if client in by_local_port
        }

    def clock_skew(self) -> Fault:
        """One instance restarted under libfaketime, its clock an hour ahead, for a while
        under load; then restarted on the real clock. Decisions use the database's clock,
        so nothing may change."""
        instance = self.instances[-1]
        at = time.time()
        restart = self.restart(instance, faketime=CLOCK_SHIFT)
        offset = self.clock_offset(instance)
        time.sleep(self.timing.clock_s)
        restart_back = self.restart(instance)
        return Fault(
            "clock_skew",
            at,
            time.time(),
            f"instance {instance.name} ran {self.timing.clock_s:g} s with its clock moved "
            f"{CLOCK_SHIFT} (its HTTP Date header read {offset:+.0f} s); restarts "
            f"(stop + start) took {restart} and {restart_back}",
        )

    @staticmethod
    def restart(instance: AppInstance, faketime: str | None = None) -> str:
        """A graceful restart, on a moved clock or not; says how long each half took."""
        started = time.time()
        instance.stop()
        stopped = time.time()
        instance.start(faketime=faketime)
        instance.wait_ready()
        return f"{stopped - started:.1f} + {time.time() - stopped:.1f} s"

    @staticmethod
    def clock_offset(instance: AppInstance) -> float:
        """How far the instance's clock is from ours, from the Date header it sends."""
        import urllib.request

        with urllib.request.urlopen(instance.base_url + "/healthz", timeout=5) as response:  # noqa: S310
            date = response.headers["Date"]
        return parsedate_to_datetime(date).timestamp() - time.time()

    def running(self) -> list[AppInstance]:
        return [i for i in self.instances if i.process is not None and i.process.poll() is None]

    # PostgreSQL --------------------------------------------------------------------------

    def postgres_restart(self, mode: str) -> Fault:
        at = time.time()
        self.postgres.restart(mode)
        return Fault(f"postgres_restart_{mode}", at, time.time(), f"pg_ctl restart -m {mode}")

    def backend_terminate(self) -> Fault:
        """pg_terminate_backend of half the app's sessions, three times, half a second apart."""
        at = time.time()
        terminated = 0
        for _round in range(3):
            with connect(self.postgres.admin_url()) as conn:
                sessions = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'reservo%%'"
                ).fetchone()
                count = max(1, (sessions[0] if sessions else 0) // 2)
                row = conn.execute(TERMINATE_SQL, [count]).fetchone()
                terminated += row[0] if row else 0
            time.sleep(0.5)
        return Fault("backend_terminate", at, time.time(), f"{terminated} sessions terminated")

    def db_read_only(self) -> Fault:
        """The database read-only for a while, as a primary demoted to a standby: new and
        existing sessions refuse writes (SQLSTATE 25006)."""
        at = time.time()
        self.read_only(True)
        time.sleep(self.timing.read_only_s)
        self.read_only(False)
        how = (
            "ALTER SYSTEM SET default_transaction_read_only and a reload"
            if self.postgres.restartable
            else "ALTER DATABASE SET default_transaction_read_only, sessions ended"
        )
        return Fault("db_read_only", at, time.time(), f"{self.timing.read_only_s:g} s: {how}")

    def read_only(self, on: bool) -> None:
        with connect(self.postgres.admin_url()) as conn:
            conn.execute("SET default_transaction_read_only = off")
            if self.postgres.restartable:
                if on:
                    conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                else:
                    conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                conn.execute("SELECT pg_reload_conf()")
                return
            # A server shared with others: only this run's database, whose sessions must
            # start again to see it.
            database = conn.execute("SELECT current_database()").fetchone()
            statement = (
                "ALTER DATABASE {} SET default_transaction_read_only = on"
                if on
                else "ALTER DATABASE {} RESET default_transaction_read_only"
            )
            name = sql.Identifier(database[0] if database else "")
            conn.execute(sql.SQL(statement).format(name))
            conn.execute(TERMINATE_SQL, [1000])

    # The network between the app and PostgreSQL -----------------------------------------

    def db_latency(self) -> Fault:
        at = time.time()
        self.proxy.command(delay_ms=LATENCY_ROUND_TRIP_MS / 2)
        time.sleep(self.timing.latency_s)
        self.proxy.command(delay_ms=0)
        return Fault(
            "db_latency",
            at,
            time.time(),
            f"{LATENCY_ROUND_TRIP_MS} ms added to every round trip for {self.timing.latency_s:g} s",
        )

    def db_blackhole(self) -> Fault:
        at = time.time()
        self.proxy.command(blackhole=True)
        time.sleep(BLACKHOLE_S)
        self.proxy.command(blackhole=False)
        return Fault("db_blackhole", at, time.time(), f"nothing forwarded for {BLACKHOLE_S:g} s")

    # Redis -------------------------------------------------------------------------------

    def redis_pause(self) -> Fault:
        at = time.time()
        self.redis.signal(signal.SIGSTOP)
        time.sleep(self.timing.redis_s)
        self.redis.signal(signal.SIGCONT)
        return Fault("redis_pause", at, time.time(), f"SIGSTOP for {self.timing.redis_s:g} s")

    def redis_down(self) -> Fault:
        at = time.time()
        self.redis.kill()
        time.sleep(self.timing.redis_s)
        self.redis.start()
        return Fault("redis_down", at, time.time(), f"kill -9, down {self.timing.redis_s:g} s")

    def heal_everything(self) -> None:
        """Undo whatever a fault left behind if the run stops in the middle of one."""
        steps: list[Callable[[], Any]] = [
            lambda: self.proxy.command(delay_ms=0, blackhole=False),
            lambda: self.redis.signal(signal.SIGCONT),
        ]
        if self.postgres.restartable:
            steps.append(lambda: self.read_only(False))
        for instance in self.instances:
            for pid in instance.workers():
                steps.append(functools.partial(os.kill, pid, signal.SIGCONT))
        for step in steps:
            try:
                step()
            except Exception as exc:  # best effort: report and go on healing the rest
                print(f"  (healing: {exc})", flush=True)
