"""Check-in: the signed code, the one check-in of a confirmed reservation with its history
row, and the guards that keep a checked-in reservation from being cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from bookings.models import Reservation, ReservationEvent, ReservationStatus
from bookings.services import (
    Actor,
    check_in_code,
    check_in_code_reference,
    check_in_reservation_id,
    checked_in_moment,
    reservation_book,
    reservation_cancel,
    reservation_check_in,
)
from bookings.services.checkin import CHECKED_IN_NOTE
from reservo.errors import AlreadyCheckedIn, InvalidCode, InvalidState, Maintenance, NotFound
from resources.models import Resource
from settings_app.models import SystemSettings
from tests.conftest import CUSTOMER, scalar
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

SAM = Actor("staff", "Sam")


def confirmed(resource: Resource | None = None, quantity: int = 2) -> Reservation:
    return reservation_book(
        resource_id=(resource or ResourceFactory()).pk,
        quantity=quantity,
        actor=CUSTOMER,
        customer_name="Ada",
    ).reservation


# The code ------------------------------------------------------------------------------


def test_the_code_is_compact_url_safe_and_names_its_reservation() -> None:
    reservation = confirmed()
    code = check_in_code(reservation.reference)
    assert code.startswith(reservation.reference + ":")
    assert len(code) < 64
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:")
    assert check_in_code_reference(code) == reservation.reference
    assert check_in_reservation_id(f"  {code}\n") == reservation.pk


@pytest.mark.parametrize(
    "tamper",
    [
        lambda code: code[:-1] + ("A" if code[-1] != "A" else "B"),  # signature altered
        lambda code: code.replace("RSV-", "RSV-2", 1),  # another reference, same signature
        lambda code: code.split(":")[0],  # no signature
        lambda code: "",
        lambda code: "not a code at all",
        lambda code: code + "x" * 300,
    ],
)
def test_a_tampered_or_malformed_code_is_invalid(tamper) -> None:
    code = check_in_code(confirmed().reference)
    with pytest.raises(InvalidCode):
        check_in_code_reference(tamper(code))


def test_a_code_of_another_installation_is_invalid() -> None:
    reservation = confirmed()
    with override_settings(SECRET_KEY="another-installation-" + "k" * 40):
        foreign = check_in_code(reservation.reference)
    assert foreign != check_in_code(reservation.reference)
    with pytest.raises(InvalidCode) as refused:
        check_in_reservation_id(foreign)
    assert refused.value.code == "invalid_code" and refused.value.http_status == 400


def test_a_code_signed_for_something_else_is_invalid() -> None:
    from django.core.signing import Signer

    reservation = confirmed()
    with pytest.raises(InvalidCode):
        check_in_code_reference(Signer().sign(reservation.reference))


def test_codes_survive_a_key_rotation_through_the_fallback_keys(settings) -> None:
    reservation = confirmed()
    code = check_in_code(reservation.reference)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-key-" + "n" * 40
    assert check_in_code_reference(code) == reservation.reference


def test_a_valid_code_of_a_deleted_reservation_is_not_found() -> None:
    with pytest.raises(NotFound):
        check_in_reservation_id(check_in_code("RSV-NOSUCH22"))


# The check-in --------------------------------------------------------------------------


def test_check_in_sets_the_database_time_and_who_and_writes_one_history_row() -> None:
    reservation = confirmed()
    before = scalar("SELECT now()")
    checked = reservation_check_in(reservation_id=reservation.pk, actor=SAM)
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CONFIRMED
    assert reservation.checked_in_at == checked.checked_in_at
    assert reservation.checked_in_at is not None and reservation.checked_in_at >= before
    assert reservation.checked_in_by == "Sam"
    event = ReservationEvent.objects.get(reservation=reservation, note=CHECKED_IN_NOTE)
    assert (event.from_status, event.to_status, event.actor) == (
        "confirmed",
        "confirmed",
        "staff:Sam",
    )
    assert event.occurred_at == reservation.checked_in_at


def test_a_second_check_in_says_when_and_by_whom_the_first_was() -> None:
    reservation = confirmed()
    first = reservation_check_in(reservation_id=reservation.pk, actor=SAM)
    with pytest.raises(AlreadyCheckedIn) as again:
        reservation_check_in(reservation_id=reservation.pk, actor=Actor("api", "door-scanner"))
    assert again.value.http_status == 409
    assert first.checked_in_at is not None
    assert again.value.extras == {
        "checked_in_at": first.checked_in_at.astimezone(UTC).isoformat(),
        "checked_in_by": "Sam",
    }
    moment = timezone.localtime(first.checked_in_at).strftime("%H:%M")
    assert again.value.detail == f"Already checked in at {moment} by Sam."
    reservation.refresh_from_db()
    assert reservation.checked_in_by == "Sam"
    assert (
        ReservationEvent.objects.filter(reservation=reservation, note=CHECKED_IN_NOTE).count() == 1
    )


def test_only_a_confirmed_reservation_checks_in() -> None:
    resource = ResourceFactory()
    held = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER, hold=True)
    with pytest.raises(InvalidState) as refused:
        reservation_check_in(reservation_id=held.reservation.pk, actor=SAM)
    assert refused.value.extras == {"current_status": "held"}
    cancelled = confirmed(resource)
    reservation_cancel(reservation_id=cancelled.pk, actor=CUSTOMER)
    with pytest.raises(InvalidState) as refused:
        reservation_check_in(reservation_id=cancelled.pk, actor=SAM)
    assert refused.value.extras == {"current_status": "cancelled"}
    assert not Reservation.objects.filter(checked_in_at__isnull=False).exists()
    assert not ReservationEvent.objects.filter(note=CHECKED_IN_NOTE).exists()


def test_an_unknown_reservation_is_not_found() -> None:
    with pytest.raises(NotFound):
        reservation_check_in(reservation_id=2**62, actor=SAM)


def test_staff_check_in_during_maintenance_but_api_clients_are_refused() -> None:
    first, second = confirmed(), confirmed()
    SystemSettings.objects.update(maintenance_mode=True)
    with pytest.raises(Maintenance):
        reservation_check_in(reservation_id=first.pk, actor=Actor("api", "door-scanner"))
    reservation_check_in(reservation_id=second.pk, actor=SAM)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.checked_in_at is None and second.checked_in_at is not None


def test_the_moment_is_the_time_on_the_same_day_and_the_date_too_on_another() -> None:
    checked_in_at = datetime(2026, 12, 9, 18, 2, tzinfo=UTC)  # 19:02 in Paris
    assert checked_in_moment(checked_in_at, checked_in_at + timedelta(hours=2)) == "19:02"
    assert checked_in_moment(checked_in_at, checked_in_at + timedelta(days=1)) == (
        "Wed 9 Dec 2026, 19:02"
    )


# Cancelling a checked-in reservation ---------------------------------------------------


def test_a_checked_in_reservation_cannot_be_cancelled() -> None:
    resource = ResourceFactory(capacity=5)
    reservation = confirmed(resource, quantity=2)
    reservation_check_in(reservation_id=reservation.pk, actor=SAM)
    with pytest.raises(InvalidState) as refused:
        reservation_cancel(reservation_id=reservation.pk, actor=Actor("staff", "boss"))
    assert refused.value.extras == {"current_status": "confirmed"}
    reservation.refresh_from_db()
    resource.refresh_from_db()
    assert reservation.status == ReservationStatus.CONFIRMED
    assert resource.confirmed == 2


def test_the_database_refuses_cancelling_a_checked_in_reservation() -> None:
    """The guard no code path can skip: raw SQL is refused by the CHECK."""
    reservation = confirmed()
    reservation_check_in(reservation_id=reservation.pk, actor=SAM)
    with (
        pytest.raises(IntegrityError) as refused,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE bookings_reservation SET status = 'cancelled', cancelled_at = now() "
            "WHERE id = %s",
            [reservation.pk],
        )
    assert refused.value.__cause__.diag.constraint_name == "reservation_checked_in_is_confirmed"
    # Nor can a reservation that is not confirmed be marked as checked in.
    held = reservation_book(
        resource_id=reservation.resource_id, quantity=1, actor=CUSTOMER, hold=True
    ).reservation
    with pytest.raises(IntegrityError), transaction.atomic():
        Reservation.objects.filter(pk=held.pk).update(checked_in_at=timezone.now())


def test_rows_inserted_without_the_new_columns_get_their_defaults() -> None:
    """Raw inserts written before check-in existed (the benchmark's) still work."""
    resource = ResourceFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bookings_reservation (public_id, reference, resource_id, quantity, "
            "status, created_at, confirmed_at, customer_name, customer_email, manage_token_hash) "
            "VALUES (gen_random_uuid(), 'RSV-RAWCHECK', %s, 1, 'confirmed', now(), now(), '', "
            "'', '') RETURNING id",
            [resource.pk],
        )
        (reservation_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO bookings_reservationevent (reservation_id, from_status, to_status, "
            "actor, occurred_at) VALUES (%s, '', 'confirmed', 'system', now())",
            [reservation_id],
        )
    reservation = Reservation.objects.get(pk=reservation_id)
    assert (reservation.checked_in_at, reservation.checked_in_by) == (None, "")
    assert ReservationEvent.objects.get(reservation=reservation).note == ""
