"""Releasing seats from house blocks: a block released in part is cancelled and its other
seats blocked again, in one transaction, so that no customer can take them meanwhile."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from bookings.models import Reservation, ReservationSeat, ReservationStatus
from bookings.services.common import (
    REFERENCE_ATTEMPTS,
    Actor,
    ReferenceTaken,
    lock_resource,
    manage_token_hash,
    new_reference,
    record,
    rules_under_lock,
    set_status,
)
from reservo.errors import InvalidState, ValidationFailed
from resources.models import Seat


@dataclass(frozen=True)
class SeatsUnblocked:
    """What `seats_unblock` did: the seats released, the blocks cancelled, and the blocks
    made again for the seats of those blocks that were not released."""

    seat_labels: list[str]
    cancelled: list[Reservation]
    reblocked: list[Reservation]


def seats_unblock(*, resource_id: int, seat_ids: Sequence[int], actor: Actor) -> SeatsUnblocked:
    """Release blocked seats of a resource, all or none. Each block holding one of them is
    cancelled; the seats of that block that were not asked for are blocked again by a new
    block with the same note and name, in the same transaction. Seats that are not
    blocked are refused, named."""
    assert actor.kind == "staff", "only staff release blocks"
    wanted = sorted(set(seat_ids))
    if not wanted:
        raise ValidationFailed({"seats": [_("Choose at least one seat.")]})

    def unblock() -> SeatsUnblocked:
        resource = lock_resource(resource_id)
        rules = rules_under_lock(actor)
        labels = dict(
            Seat.objects.filter(resource_id=resource_id, id__in=wanted)
            .order_by("row", "number", "label", "id")
            .values_list("id", "label")
        )
        unknown = [seat_id for seat_id in wanted if seat_id not in labels]
        if unknown:
            raise ValidationFailed(
                {"seats": [_("Unknown seats for this resource: %(ids)s.") % {"ids": unknown}]}
            )
        # Every write to this resource's reservations locks the resource first: the blocks
        # read here stay as they are until this transaction ends.
        block_of_seat = dict(
            ReservationSeat.objects.filter(
                resource_id=resource_id,
                seat_id__in=wanted,
                active=True,
                reservation__blocked=True,
                reservation__status=ReservationStatus.HELD,
            ).values_list("seat_id", "reservation_id")
        )
        not_blocked = [seat_id for seat_id in labels if seat_id not in block_of_seat]
        if not_blocked:
            raise InvalidState(
                _("These seats are not blocked: %(labels)s.")
                % {"labels": ", ".join(labels[seat_id] for seat_id in not_blocked)},
                seats=not_blocked,
            )
        blocks = list(
            Reservation.objects.select_for_update()
            .filter(pk__in=set(block_of_seat.values()))
            .order_by("pk")
        )
        kept: dict[int, list[int]] = defaultdict(list)
        for reservation_id, seat_id in (
            ReservationSeat.objects.filter(reservation__in=blocks, active=True)
            .order_by("seat_id")
            .values_list("reservation_id", "seat_id")
        ):
            if seat_id not in block_of_seat:
                kept[reservation_id].append(seat_id)
        set_status(blocks, ReservationStatus.CANCELLED, actor, resource=resource, now=rules.now)
        reblocked = [
            Reservation.objects.create(
                reference=new_reference(),
                resource=resource,
                quantity=len(kept[block.pk]),
                status=ReservationStatus.HELD,
                created_at=rules.now,
                customer_name=block.customer_name,
                note=block.note,
                blocked=True,
                manage_token_hash=manage_token_hash(secrets.token_urlsafe(24)),
            )
            for block in blocks
            if kept[block.pk]
        ]
        ReservationSeat.objects.bulk_create(
            ReservationSeat(reservation=new_block, seat_id=seat_id, resource_id=resource_id)
            for block, new_block in zip(
                [block for block in blocks if kept[block.pk]], reblocked, strict=True
            )
            for seat_id in kept[block.pk]
        )
        if reblocked:
            record(reblocked, "", actor, resource=resource)
        return SeatsUnblocked(
            seat_labels=list(labels.values()),
            cancelled=blocks,
            reblocked=reblocked,
        )

    constraint_errors = {"reservation_reference_unique": ReferenceTaken}
    for _attempt in range(REFERENCE_ATTEMPTS):
        try:
            return in_booking_transaction(unblock, constraint_errors=constraint_errors)
        except ReferenceTaken:
            continue
    raise ReferenceTaken()
