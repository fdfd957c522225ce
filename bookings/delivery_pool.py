"""The worker's delivery threads: a bounded pool of lanes, one lane per webhook endpoint.

A lane is what one claim holds for one destination — a webhook endpoint's messages, or one
email — delivered one after the other on one thread. An endpoint never has two lanes at
once in a worker (the worker does not claim its messages while it has one), so a slow or
dead endpoint holds at most one thread, for at most RESERVO_WEBHOOK_TIMEOUT_S a message
and only until its circuit opens, while the other threads deliver everything else.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connections

from bookings.models import OutboxMessage
from bookings.notifications import OutboundMessage

logger = logging.getLogger(__name__)

DeliverLane = Callable[[uuid.UUID, list[OutboundMessage]], None]
_Lane = tuple[str, uuid.UUID, list[OutboundMessage]]


def lane_of(message: OutboundMessage) -> str:
    if message.channel == OutboxMessage.Channel.WEBHOOK:
        return f"webhook:{message.target}"
    return f"{message.channel}:{message.id}"


def _no_rest() -> None:
    pass


class DeliveryPool:
    """`size` threads delivering lanes with `deliver(claim, messages)`; each thread calls
    `rest()` when it has finished a lane (the worker's heartbeat stops watching it).

    `close()` lets the lanes already submitted finish, then stops the threads.
    """

    def __init__(
        self,
        *,
        size: int,
        deliver: DeliverLane,
        rest: Callable[[], None] = _no_rest,
        name: str = "delivery",
    ) -> None:
        self.size = max(1, size)
        self._deliver = deliver
        self._rest = rest
        self._queue: queue.SimpleQueue[_Lane | None] = queue.SimpleQueue()
        self._lanes: dict[str, list[int]] = {}  # submitted and not finished: message ids
        # Re-entrant: `wake()` may run in a signal handler on a thread that holds it.
        self._changed = threading.Condition(threading.RLock())
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
            for index in range(self.size)
        ]
        for thread in self._threads:
            thread.start()

    def room(self) -> int:
        """How many more lanes would start at once."""
        with self._changed:
            return self.size - len(self._lanes)

    def busy_webhook_targets(self) -> list[str]:
        """The endpoints (outbox `target`s) that have a lane: not to be claimed now."""
        with self._changed:
            return [lane.split(":", 1)[1] for lane in self._lanes if lane.startswith("webhook:")]

    def busy_message_ids(self) -> list[int]:
        """The messages submitted and not finished: not to be claimed again by this worker,
        even once their lease has run out."""
        with self._changed:
            return [message_id for ids in self._lanes.values() for message_id in ids]

    def submit(self, claim: uuid.UUID, messages: list[OutboundMessage]) -> None:
        lanes: dict[str, list[OutboundMessage]] = {}
        for message in messages:
            lanes.setdefault(lane_of(message), []).append(message)
        with self._changed:
            for lane, lane_messages in lanes.items():
                self._lanes[lane] = [message.id for message in lane_messages]
                self._queue.put((lane, claim, lane_messages))

    def wait(self, timeout: float) -> None:
        """Until a lane finishes, `wake()` is called, or `timeout` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        for _thread in self._threads:
            self._queue.put(None)
        # Past their lease, claimed messages go to another worker anyway: no use waiting.
        for thread in self._threads:
            thread.join(settings.RESERVO_OUTBOX_LEASE_SECONDS)

    def _work(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                lane, claim, messages = item
                try:
                    close_old_connections()
                    self._deliver(claim, messages)
                except Exception:
                    # Unrecorded messages come back after their lease.
                    logger.exception("delivering %s failed", lane)
                finally:
                    self._rest()
                    with self._changed:
                        self._lanes.pop(lane, None)
                        self._changed.notify_all()
        finally:
            connections.close_all()
