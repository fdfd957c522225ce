"""The transactional outbox: a row for each told change, iff the change committed."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from bookings.models import OutboxMessage, Reservation, WebhookEndpoint
from bookings.notifications import outbox_enqueue
from bookings.services import (
    manage_token_hash,
    reservation_book,
    reservation_cancel,
    reservation_confirm,
    reservations_expire_due,
)
from reservo.errors import SoldOut
from tests.conftest import CUSTOMER
from tests.factories import ApiClientFactory, ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

EMAIL = "ada@example.com"


def rows(reservation: Reservation | None = None) -> list[tuple[str, str, str]]:
    messages = OutboxMessage.objects.order_by("id")
    if reservation is not None:
        messages = messages.filter(reservation=reservation)
    return [(m.event_type, m.channel, m.target) for m in messages]


def expire_by_clock(*reservations: Reservation) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bookings_reservation SET hold_expires_at = now() - interval '1 second' "
            "WHERE id = ANY(%s)",
            [[r.pk for r in reservations]],
        )


@pytest.fixture
def api_client():  # type: ignore[no-untyped-def]
    return ApiClientFactory()


@pytest.fixture
def endpoint(api_client):  # type: ignore[no-untyped-def]
    return WebhookEndpoint.objects.create(
        api_client=api_client, url="http://127.0.0.1:9/hook", secret="s"
    )


class TestWhatIsEnqueued:
    def test_confirmed_booking_tells_the_customer_and_the_integrator(
        self, api_client, endpoint
    ) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=5, name="Friday meetup")
        booking = reservation_book(
            resource_id=resource.pk,
            quantity=2,
            actor=CUSTOMER,
            customer_name="Ada",
            customer_email=EMAIL,
            api_client=api_client,
        )
        reservation = booking.reservation
        assert rows() == [
            ("reservation.confirmed", "email", EMAIL),
            ("reservation.confirmed", "webhook", str(endpoint.pk)),
        ]
        email, webhook = OutboxMessage.objects.order_by("id")
        snapshot = webhook.payload["reservation"]
        assert snapshot["id"] == str(reservation.public_id)
        assert snapshot["reference"] == reservation.reference
        assert snapshot["resource"] == resource.pk
        assert snapshot["quantity"] == 2
        assert snapshot["seats"] == []
        assert snapshot["status"] == "confirmed"
        assert snapshot["customer"] == {"name": "Ada", "email": EMAIL}
        assert snapshot["confirmed_at"] is not None
        assert "manage_token" not in webhook.payload
        assert email.payload["resource"]["name"] == "Friday meetup"
        # The plain-text token, known only now, rides with the email (it matches the hash).
        assert manage_token_hash(email.payload["manage_token"]) == reservation.manage_token_hash
        assert email.status == OutboxMessage.Status.PENDING
        assert email.event_id != webhook.event_id

    def test_hold_then_confirm_then_cancel_tells_each_step(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=5)
        reservation = reservation_book(
            resource_id=resource.pk,
            quantity=1,
            hold=True,
            actor=CUSTOMER,
            customer_email=EMAIL,
            api_client=api_client,
        ).reservation
        reservation_confirm(reservation_id=reservation.pk, actor=CUSTOMER)
        reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
        assert [(event, channel) for event, channel, _t in rows()] == [
            ("reservation.held", "email"),
            ("reservation.held", "webhook"),
            ("reservation.confirmed", "email"),
            ("reservation.confirmed", "webhook"),
            ("reservation.cancelled", "email"),
            ("reservation.cancelled", "webhook"),
        ]
        # Each row keeps the reservation as it was when the change happened.
        statuses = [
            m.payload["reservation"]["status"] for m in OutboxMessage.objects.order_by("id")
        ]
        assert statuses == ["held", "held", "confirmed", "confirmed", "cancelled", "cancelled"]
        # Only the booking's own email carries the manage token.
        tokens = [
            "manage_token" in m.payload
            for m in OutboxMessage.objects.filter(channel="email").order_by("id")
        ]
        assert tokens == [True, False, False]

    def test_without_email_or_client_nothing_is_enqueued(self) -> None:
        resource = ResourceFactory(capacity=5)
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        assert rows() == []

    def test_endpoint_filters_inactive_endpoints_and_other_clients(self, api_client) -> None:  # type: ignore[no-untyped-def]
        only_cancelled = WebhookEndpoint.objects.create(
            api_client=api_client,
            url="http://127.0.0.1:9/cancelled",
            secret="s",
            event_types=["reservation.cancelled"],
        )
        WebhookEndpoint.objects.create(
            api_client=api_client, url="http://127.0.0.1:9/off", secret="s", active=False
        )
        WebhookEndpoint.objects.create(
            api_client=ApiClientFactory(), url="http://127.0.0.1:9/other", secret="s"
        )
        resource = ResourceFactory(capacity=5)
        reservation = reservation_book(
            resource_id=resource.pk, quantity=1, actor=CUSTOMER, api_client=api_client
        ).reservation
        assert rows() == []
        reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
        assert rows() == [("reservation.cancelled", "webhook", str(only_cancelled.pk))]

    def test_seats_are_in_the_snapshot(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = SeatedResourceFactory()
        seats = list(resource.seats.order_by("id")[:2])
        reservation_book(
            resource_id=resource.pk,
            seat_ids=[s.pk for s in seats],
            actor=CUSTOMER,
            customer_email=EMAIL,
            api_client=api_client,
        )
        email, webhook = OutboxMessage.objects.order_by("id")
        assert webhook.payload["reservation"]["seats"] == [s.pk for s in seats]
        assert email.payload["seat_labels"] == [s.label for s in seats]

    def test_bulk_expiry_tells_every_expired_hold(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=10)
        holds = [
            reservation_book(
                resource_id=resource.pk,
                quantity=1,
                hold=True,
                actor=CUSTOMER,
                customer_email=f"c{i}@example.com" if i else "",
                api_client=api_client,
            ).reservation
            for i in range(3)
        ]
        OutboxMessage.objects.all().delete()
        expire_by_clock(*holds)
        assert reservations_expire_due() == 3
        expired = OutboxMessage.objects.filter(event_type="reservation.expired")
        assert sorted((m.reservation_id, m.channel) for m in expired) == sorted(
            [(h.pk, "webhook") for h in holds] + [(h.pk, "email") for h in holds[1:]]
        )
        assert {m.payload["reservation"]["status"] for m in expired} == {"expired"}
        assert all(m.payload["reservation"]["expired_at"] for m in expired)


class TestOnlyWhatCommitted:
    def test_rolled_back_booking_leaves_no_row(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=5)
        with pytest.raises(RuntimeError), transaction.atomic():
            reservation_book(
                resource_id=resource.pk,
                quantity=1,
                actor=CUSTOMER,
                customer_email=EMAIL,
                api_client=api_client,
            )
            assert len(rows()) == 2  # written in the booking's transaction...
            raise RuntimeError("the enclosing transaction fails")
        assert rows() == []  # ...and gone with it
        assert Reservation.objects.count() == 0

    def test_refused_booking_leaves_no_row(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=1)
        with pytest.raises(SoldOut):
            reservation_book(
                resource_id=resource.pk,
                quantity=2,
                actor=CUSTOMER,
                customer_email=EMAIL,
                api_client=api_client,
            )
        assert rows() == []

    def test_enqueue_never_duplicates(
        self, api_client, endpoint, django_assert_num_queries
    ) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=5)
        reservation = reservation_book(
            resource_id=resource.pk,
            quantity=1,
            actor=CUSTOMER,
            customer_email=EMAIL,
            api_client=api_client,
        ).reservation
        before = rows()
        # The client's webhook endpoints, then the rows, in one insert.
        with django_assert_num_queries(2):
            outbox_enqueue([reservation], resource=resource)
        assert rows() == before

    def test_rows_are_due_at_once_by_the_database_clock(self, api_client, endpoint) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=5)
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER, api_client=api_client)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM bookings_outboxmessage "
                "WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
            )
            assert cursor.fetchone()[0] == 1
