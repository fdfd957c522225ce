"""The workload: client threads booking, confirming and cancelling over HTTP against both
app instances, recording every attempt in the history.

Each operation carries its own Idempotency-Key and is sent again, with the same key and
body, after a 503, a 409 `idempotency_in_progress`, a 429, a timeout or a connection
error (to either instance, as behind a load balancer), until it gets a definite answer or
its time runs out. The key is also the booking's customer name, so that the checker can
find in the database what each key did.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import History
from chaos.observations import retryable

RESERVATIONS = "/api/v1/reservations/"
MAX_RETRY_WAIT_S = 1.0


@dataclass(frozen=True)
class Answer:
    outcome: str  # ok | fail | unknown
    status: int | None = None
    body: Any = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def code(self) -> str | None:
        if self.outcome == "fail":
            return (
                str(self.body.get("code")) if isinstance(self.body, dict) else f"http_{self.status}"
            )
        return None

    @property
    def retryable(self) -> bool:
        return retryable(self.outcome, self.status, self.code)


def send(
    port: int,
    method: str,
    path: str,
    *,
    api_key: str,
    body: Any = None,
    idempotency_key: str | None = None,
    timeout: float,
) -> Answer:
    """One HTTP request on a new connection (sync workers close it after each answer)."""
    headers = {"Authorization": f"Api-Key {api_key}", "Accept": "application/json"}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        retry_after = response.getheader("Retry-After")
    except TimeoutError:
        return Answer("unknown", error="timeout")
    except ConnectionRefusedError:
        return Answer("unknown", error="refused")
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        return Answer("unknown", error="disconnected")
    except (OSError, http.client.HTTPException) as exc:
        return Answer("unknown", error=type(exc).__name__)
    finally:
        connection.close()
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = {"raw": raw[:500].decode(errors="replace")}
    return Answer(
        "ok" if 200 <= response.status < 300 else "fail",
        status=response.status,
        body=parsed,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


@dataclass
class CancelParty:
    """Several clients cancelling one reservation at once."""

    reservation: str
    size: int
    barrier: threading.Barrier
    joined: int = 1


@dataclass
class World:
    """What the clients share: the resources, the open cancel parties, the pace of
    successful bookings (the nemesis waits for it after each fault), and the stop flag."""

    instances: list[tuple[str, int]]  # (name, port)
    roomy: list[int]
    hot: list[int]
    seated: dict[int, list[int]]
    client_timeout_s: float
    resolve_limit_s: float
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    parties: list[CancelParty] = field(default_factory=list)
    last_booking_sent_at: float = 0.0  # start of the latest acknowledged booking attempt

    def booked(self, started: float) -> None:
        with self.lock:
            self.last_booking_sent_at = max(self.last_booking_sent_at, started)

    def booking_acknowledged_since(self, since: float) -> bool:
        with self.lock:
            return self.last_booking_sent_at >= since

    def open_party(self, reservation: str, size: int) -> CancelParty:
        party = CancelParty(reservation, size, threading.Barrier(size, timeout=3))
        with self.lock:
            self.parties.append(party)
        return party

    def join_party(self) -> CancelParty | None:
        with self.lock:
            for party in self.parties:
                if party.joined < party.size and not party.barrier.broken:
                    party.joined += 1
                    if party.joined == party.size:
                        self.parties.remove(party)
                    return party
            self.parties = [p for p in self.parties if not p.barrier.broken]
        return None


@dataclass
class Owned:
    status: str
    resource: int


class Client(threading.Thread):
    """One client: its own API key, its own reservations, one operation at a time."""

    def __init__(
        self, number: int, api_key: str, world: World, history: History, seed: int
    ) -> None:
        super().__init__(name=f"client-{number:02d}", daemon=True)
        self.number = number
        self.api_key = api_key
        self.world = world
        self.history = history
        self.random = random.Random(seed)
        self.sequence = 0
        self.owned: dict[str, Owned] = {}

    def run(self) -> None:
        while not self.world.stopping.is_set():
            party = self.world.join_party()
            if party is not None:
                self.cancel_together(party)
                continue
            self.choose()()

    def choose(self) -> Callable[[], None]:
        held = [rid for rid, r in self.owned.items() if r.status == "held"]
        active = [rid for rid, r in self.owned.items() if r.status in ("held", "confirmed")]
        confirmed = [rid for rid, r in self.owned.items() if r.status == "confirmed"]
        roll = self.random.random()
        if roll < 0.13 and held:
            return lambda: self.confirm(self.random.choice(held))
        if roll < 0.30 and active:
            return lambda: self.cancel(self.random.choice(active))
        if roll < 0.36 and confirmed:
            return lambda: self.start_party(self.random.choice(confirmed))
        if roll < 0.52 and self.world.hot:
            return lambda: self.book_quantity(self.random.choice(self.world.hot))
        if roll < 0.68 and self.world.seated:
            return self.book_seats
        return lambda: self.book_quantity(self.random.choice(self.world.roomy))

    # Operations --------------------------------------------------------------------------

    def next_key(self) -> str:
        self.sequence += 1
        return f"c{self.number:02d}-{self.sequence:06d}"

    def book_quantity(self, resource: int) -> None:
        key = self.next_key()
        body = {
            "resource": resource,
            "quantity": self.random.randint(1, 3),
            "hold": self.random.random() < 0.35,
            "customer": {"name": key},
        }
        self.remember(self.perform("book", key, RESERVATIONS, body))

    def book_seats(self) -> None:
        resource = self.random.choice(list(self.world.seated))
        seats = sorted(self.random.sample(self.world.seated[resource], self.random.randint(1, 2)))
        key = self.next_key()
        body = {
            "resource": resource,
            "seats": seats,
            "hold": self.random.random() < 0.35,
            "customer": {"name": key},
        }
        self.remember(self.perform("book_seats", key, RESERVATIONS, body))

    def remember(self, answer: Answer) -> None:
        if answer.outcome == "ok" and isinstance(answer.body, dict):
            self.owned[answer.body["id"]] = Owned(answer.body["status"], answer.body["resource"])

    def confirm(self, reservation: str) -> None:
        answer = self.perform(
            "confirm", self.next_key(), f"{RESERVATIONS}{reservation}/confirm/", {}
        )
        self.learn(reservation, answer)

    def cancel(self, reservation: str) -> None:
        answer = self.perform(
            "cancel", self.next_key(), f"{RESERVATIONS}{reservation}/cancel/", None
        )
        self.learn(reservation, answer)

    def learn(self, reservation: str, answer: Answer) -> None:
        """What a transition's answer says about the reservation's status now."""
        if answer.outcome == "ok" and isinstance(answer.body, dict):
            status = answer.body["status"]
        elif answer.code == "invalid_state" and isinstance(answer.body, dict):
            status = str(answer.body.get("current_status", "cancelled"))
        elif answer.code == "hold_expired":
            status = "expired"
        else:
            return
        if status in ("held", "confirmed"):
            self.owned[reservation].status = status
        else:
            self.owned.pop(reservation, None)

    def start_party(self, reservation: str) -> None:
        party = self.world.open_party(reservation, self.random.randint(3, 5))
        self.owned.pop(reservation, None)
        self.cancel_together(party)

    def cancel_together(self, party: CancelParty) -> None:
        # Not everyone came in time (a broken barrier): those who did cancel anyway.
        with contextlib.suppress(threading.BrokenBarrierError):
            party.barrier.wait()
        self.perform("cancel", self.next_key(), f"{RESERVATIONS}{party.reservation}/cancel/", None)

    # Sending -----------------------------------------------------------------------------

    def perform(self, op: str, key: str, path: str, body: Any) -> Answer:
        """Send until a definite answer, or until the operation's time runs out."""
        started = time.monotonic()
        attempt = 0
        instance, port = self.random.choice(self.world.instances)
        while True:
            attempt += 1
            invocation, start = self.history.invoke(
                op=op,
                client=self.number,
                key=key,
                attempt=attempt,
                instance=instance,
                method="POST",
                path=path,
                request=body,
            )
            answer = send(
                port,
                "POST",
                path,
                api_key=self.api_key,
                body=body,
                idempotency_key=key,
                timeout=self.world.client_timeout_s,
            )
            fields: dict[str, Any] = {
                "op": op,
                "client": self.number,
                "key": key,
                "attempt": attempt,
                "instance": instance,
                "path": path,
            }
            if answer.outcome == "unknown":
                fields["error"] = answer.error
            else:
                fields.update(status=answer.status, response=answer.body)
                if answer.outcome == "fail":
                    fields["code"] = answer.code
            self.history.complete(invocation, start, answer.outcome, **fields)
            if answer.outcome == "ok" and op in ("book", "book_seats"):
                self.world.booked(start)
            if not answer.retryable:
                return answer
            if time.monotonic() - started > self.world.resolve_limit_s:
                return answer
            if answer.outcome == "unknown":
                # Another instance may answer: a refused connection means this one is down.
                others = [i for i in self.world.instances if i[1] != port]
                instance, port = self.random.choice(others or self.world.instances)
                time.sleep(self.random.uniform(0.02, 0.1))
            else:
                instance, port = self.random.choice(self.world.instances)
                wait = min(answer.retry_after or MAX_RETRY_WAIT_S, MAX_RETRY_WAIT_S)
                time.sleep(self.random.uniform(wait / 2, wait))
