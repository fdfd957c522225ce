"""The load of one benchmark scenario, run by locust (headless, FastHttpUser) as a subprocess.

The harness (bench/load.py) starts one or more standalone locust processes with the
scenario in BENCH_* variables. Every user waits on a shared go-file so all processes start
together, sends requests back to back (closed loop, no think time) and records each one
(start, latency, status) in this process's sample file; the harness computes the figures
from those raw samples, not from locust's rounded statistics.

A user stops itself before its next request once the scenario's end is reached (deadline,
or this process's share of sold-out refusals), so every request sent is also answered and
counted: a killed in-flight booking could otherwise commit without a recorded 201.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.exception import StopUser

SCENARIO = os.environ.get("BENCH_SCENARIO", "floor_get")
API_KEY = os.environ.get("BENCH_API_KEY", "")
RESOURCE_IDS = [int(i) for i in os.environ.get("BENCH_RESOURCE_IDS", "0").split(",") if i]
PROCESS_INDEX = int(os.environ.get("BENCH_PROCESS_INDEX", "0"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "1"))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
REFUSALS = int(os.environ.get("BENCH_REFUSALS", "0"))
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "1000000"))
SAMPLES_FILE = os.environ.get("BENCH_SAMPLES_FILE", "")
GO_FILE = Path(os.environ.get("BENCH_GO_FILE", "/nonexistent"))
READY_FILE = Path(os.environ.get("BENCH_READY_FILE", "/nonexistent"))
GO_WAIT_S = 120
BACKGROUND_USERS = int(os.environ.get("BENCH_BACKGROUND_USERS", "0"))
BACKGROUND_RESOURCE = int(os.environ.get("BENCH_BACKGROUND_RESOURCE", "0"))
BACKGROUND_RATE = float(os.environ.get("BENCH_BACKGROUND_RATE", "10"))
API_BOOK_PATH = "/api/v1/reservations/"
BOOK_PATH = os.environ.get("BENCH_BOOK_PATH") or API_BOOK_PATH

BOOKING_SCENARIOS = {"book"}
MAIN, BACKGROUND = "main", "background"


class _Run:
    """This process's state: the go time, counters for the stop rule, the samples."""

    go_at: float | None = None
    sent = 0
    refused = 0
    stopping = False
    active_users = 0
    samples: list[tuple[float, float, str, str]] = []


def _wait_for_go() -> float:
    READY_FILE.touch()
    deadline = time.monotonic() + GO_WAIT_S
    while _Run.go_at is None:
        if GO_FILE.exists():
            text = GO_FILE.read_text().strip()
            if text:
                _Run.go_at = float(text)
                break
        if time.monotonic() > deadline:
            raise StopUser()
        gevent.sleep(0.01)
    gevent.sleep(max(0.0, _Run.go_at - time.time()))
    return _Run.go_at


def _should_stop() -> bool:
    if _Run.stopping:
        return True
    go_at = _Run.go_at or time.time()
    if SCENARIO in BOOKING_SCENARIOS:
        done = _Run.refused >= REFUSALS or _Run.sent >= MAX_REQUESTS
    else:
        done = time.time() >= go_at + DURATION_S
    # A booking run also ends on the time bound, so a stuck server cannot hold it forever.
    done = done or time.time() >= go_at + DURATION_S
    if done:
        _Run.stopping = True
    return done


@events.request.add_listener
def _record(
    start_time: float, response_time: float, response: Any, context: dict[str, Any], **_kw: Any
) -> None:
    _Run.samples.append((start_time, response_time, _label(response), context.get("kind", MAIN)))


def _label(response: Any) -> str:
    """The status, with the problem's code for errors ("409:sold_out"); "0": no answer."""
    status = int(getattr(response, "status_code", 0) or 0)
    if status < 400:
        return str(status)
    try:
        # The bytes, not `text`: a problem document names no charset, and `text` would
        # have charset_normalizer guess one for every refusal.
        code = json.loads(response.content or b"{}").get("code", "")
    except (ValueError, AttributeError):
        code = ""
    return f"{status}:{code}" if code else str(status)


class _BenchUserBase(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    # Sockets stay open between requests when the server keeps them alive (gthread);
    # a sync worker closes each one and the client reconnects, as a browser would.
    connection_timeout = 10.0
    network_timeout = 30.0

    def on_start(self) -> None:
        _Run.active_users += 1
        _wait_for_go()

    def on_stop(self) -> None:
        _Run.active_users -= 1
        if _Run.active_users <= 0 and self.environment.runner is not None:
            # The last user out ends the process; no request is left in flight.
            gevent.spawn(self.environment.runner.quit)

    def _headers(self, idempotent: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {API_KEY}"}
        if idempotent:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return headers

    def _book(self, resource_id: int, kind: str) -> None:
        body = json.dumps({"resource": resource_id, "quantity": 1})
        # The background bookings of the availability scenario always go through the API.
        with self.client.post(
            BOOK_PATH if kind == MAIN else API_BOOK_PATH,
            data=body,
            headers=self._headers(idempotent=True),
            name="book",
            context={"kind": kind},
            catch_response=True,
        ) as response:
            if response.status_code == 409 and b"sold_out" in (response.content or b""):
                if kind == MAIN:
                    _Run.refused += 1
                response.success()


class BenchUser(_BenchUserBase):
    """One of the scenario's concurrent clients."""

    @task
    def step(self) -> None:
        if _should_stop():
            raise StopUser()
        index = _Run.sent
        _Run.sent += 1
        if SCENARIO == "floor_get":
            self._get("/bench/floor/get/", "floor_get")
        elif SCENARIO == "floor_post":
            self._post_floor()
        elif SCENARIO == "availability":
            resource_id = RESOURCE_IDS[index % len(RESOURCE_IDS)]
            self._get(f"/api/v1/resources/{resource_id}/", "availability", auth=True)
        else:
            # Round robin, each process on its own share of the resources: every resource
            # sells out after its capacity of requests, and refusals start only then.
            position = index * PROCESSES + PROCESS_INDEX
            self._book(RESOURCE_IDS[position % len(RESOURCE_IDS)], MAIN)

    def _get(self, path: str, name: str, auth: bool = False) -> None:
        headers = self._headers(idempotent=False) if auth else {}
        self.client.get(path, headers=headers, name=name)

    def _post_floor(self) -> None:
        body = json.dumps({"resource": 1, "quantity": 1})
        self.client.post(
            "/bench/floor/post/",
            data=body,
            headers=self._headers(idempotent=True),
            name="floor_post",
        )


class BackgroundBooker(_BenchUserBase):
    """Bookings at a steady pace while availability is read (the availability scenario)."""

    fixed_count = BACKGROUND_USERS
    wait_time = constant_throughput(BACKGROUND_RATE)

    @task
    def step(self) -> None:
        if _should_stop():
            raise StopUser()
        self._book(BACKGROUND_RESOURCE, BACKGROUND)


@events.test_stop.add_listener
def _write_samples(**_kwargs: Any) -> None:
    if not SAMPLES_FILE:
        return
    with open(SAMPLES_FILE, "w") as out:
        out.writelines(
            f"{start:.6f},{latency:.3f},{status},{kind}\n"
            for start, latency, status, kind in _Run.samples
        )
