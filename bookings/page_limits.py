"""Per-address limits of the booking pages, so that a script cannot hoard places or use
the site to send email: holds made, places held at once, and confirmation emails per
client address and per recipient.

Counted in the shared Redis (`reservo.limits`); when Redis does not answer, a limit is
not applied and a warning is logged.

Places held at once: the address's holds are remembered in a Redis set of their
references, and PostgreSQL says which of them are still held and for how many places
(a hold confirmed, released, cancelled or expired stops counting at once, whichever path
ended it). The set only says which reservations to ask about; entries the database no
longer holds are dropped as they are found. A hold being made is counted from before it
starts (a pending entry, with a short expiry in case its process dies) until it is in
the set, so that holds sent together are all counted against each other: together, they
can be refused when one alone would have fitted, but never pass the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db.models.functions import Now
from django.http import HttpRequest

from bookings.models import Reservation, ReservationStatus
from reservo import limits
from reservo.addresses import address_subject, client_address

# A pending hold stops counting after this long, should its process die before it ends.
HOLD_PENDING_SECONDS = 60
# The set of an address's holds lives this long after its last hold (holds last at most a
# day, longer only while maintenance mode extends them).
HELD_SET_SECONDS = 2 * 86400


def _address(request: HttpRequest) -> str:
    return address_subject(client_address(request))


def hold_rate_wait(request: HttpRequest) -> int | None:
    """Count a hold attempt from the client's address: None within RESERVO_HOLD_RATE,
    else the seconds until it may hold again."""
    rate = limits.parse_rate(settings.RESERVO_HOLD_RATE)
    return limits.window_hit("page-hold", _address(request), rate)


class PlacesLimitReached(Exception):
    """The address already holds `held` places, `limit` at most at once; the first of its
    holds ends in `retry_after` seconds."""

    def __init__(self, held: int, limit: int, retry_after: int) -> None:
        super().__init__(f"{held} places held, {limit} at most")
        self.held = held
        self.limit = limit
        self.retry_after = retry_after


class HoldAdmission:
    """A hold admitted against its address's places; `record` the hold once made."""

    def __init__(self, subject: str | None, pending: str = "") -> None:
        self.subject = subject
        self.pending = pending
        self.reference: str | None = None
        self.gone: list[str] = []

    def record(self, reference: str | None) -> None:
        self.reference = reference

    def close(self) -> None:
        """The hold is made or refused: it is in the set (if made) and no longer pending."""
        if self.subject is None:
            return
        try:
            pipeline = limits.redis().pipeline(transaction=False)
            held = limits.key("hold-places", self.subject)
            if self.reference:
                pipeline.sadd(held, self.reference)
                pipeline.expire(held, HELD_SET_SECONDS)
            if self.gone:
                pipeline.srem(held, *self.gone)
            pipeline.zrem(limits.key("hold-pending", self.subject), self.pending)
            pipeline.execute()
        except Exception:  # Redis is down or refused the command: fail open
            limits.not_applied("places held")


def _live_holds(references: set[str]) -> dict[str, tuple[int, float]]:
    """The holds among `references` that are still held (by the database clock): their
    places and the seconds until they end."""
    if not references:
        return {}
    rows = (
        Reservation.objects.filter(
            reference__in=references,
            status=ReservationStatus.HELD,
            hold_expires_at__gt=Now(),
        )
        .annotate(db_now=Now())
        .values_list("reference", "quantity", "hold_expires_at", "db_now")
    )
    return {
        reference: (quantity, (expires_at - db_now).total_seconds() if expires_at else 0.0)
        for reference, quantity, expires_at, db_now in rows
    }


def _admit(request: HttpRequest, places: int, submission: str) -> HoldAdmission:
    limit = settings.RESERVO_HOLD_PLACES_PER_ADDRESS
    if limit <= 0:
        return HoldAdmission(None)
    subject = _address(request)
    pending_key = limits.key("hold-pending", subject)
    pending = f"{limits.digest(submission)}:{places}"
    now = time.time()
    try:
        pipeline = limits.redis().pipeline(transaction=False)
        pipeline.zremrangebyscore(pending_key, "-inf", now)
        pipeline.zadd(pending_key, {pending: now + HOLD_PENDING_SECONDS})
        pipeline.expire(pending_key, HOLD_PENDING_SECONDS)
        pipeline.zrange(pending_key, 0, -1)
        pipeline.smembers(limits.key("hold-places", subject))
        *_done, pending_entries, members = pipeline.execute()
    except Exception:  # Redis is down or refused the command: fail open
        limits.not_applied("places held")
        return HoldAdmission(None)
    admission = HoldAdmission(subject, pending)
    references = {_text(member) for member in members}
    live = _live_holds(references)
    admission.gone = sorted(references - live.keys())
    held = sum(places for places, _left in live.values())
    being_held = sum(int(_text(entry).rpartition(":")[2]) for entry in pending_entries)
    if held + being_held > limit:
        admission.close()
        first_ends = min((left for _places, left in live.values()), default=1.0)
        raise PlacesLimitReached(held=held, limit=limit, retry_after=max(1, math.ceil(first_ends)))
    return admission


@contextmanager
def hold_admission(request: HttpRequest, places: int, submission: str) -> Iterator[HoldAdmission]:
    """Admit a hold of `places` from the client's address, or raise PlacesLimitReached.
    Inside the block, make the hold and `record` its reference.

    `submission` names the form sent (its one-time token): the same form sent twice at
    once makes one hold, so it is counted once.
    """
    admission = _admit(request, places, submission)
    try:
        yield admission
    finally:
        admission.close()


def confirmation_email_wait(request: HttpRequest, recipient: str) -> int | None:
    """Count a confirmation email to `recipient` asked for from the client's address:
    None within both rates, else the seconds until it may be sent."""
    by_address = limits.parse_rate(settings.RESERVO_EMAIL_RATE_PER_ADDRESS)
    wait = limits.window_hit("email-address", _address(request), by_address)
    if wait is not None:
        return wait
    by_recipient = limits.parse_rate(settings.RESERVO_EMAIL_RATE_PER_RECIPIENT)
    return limits.window_hit("email-recipient", limits.digest(recipient.lower()), by_recipient)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
