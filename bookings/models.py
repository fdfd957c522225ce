"""Reservations, their seats and history, API clients, idempotency records, the outbox."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from bookings.webhook_secrets import webhook_secret_decrypt, webhook_secret_encrypt
from resources.models import Resource, Seat


class ApiScope(models.TextChoices):
    BOOK = "book", _("book")
    MANAGE = "manage", _("manage")


class ReservationStatus(models.TextChoices):
    HELD = "held", _("Held")
    CONFIRMED = "confirmed", _("Confirmed")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


ACTIVE_STATUSES = (ReservationStatus.HELD, ReservationStatus.CONFIRMED)


class ApiClient(models.Model):
    Scope = ApiScope

    name = models.CharField(_("name"), max_length=100, unique=True)
    # The key is "rsv_<prefix>_<secret>"; only the prefix (for lookup) and a SHA-256 of the
    # whole key are stored. Keys are random and long, so a fast hash is the right one.
    key_prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API client")
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=ApiScope.values),
                name="api_client_scopes_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or (
            scope == self.Scope.BOOK and self.Scope.MANAGE in self.scopes
        )


class Reservation(models.Model):
    Status = ReservationStatus
    ACTIVE_STATUSES = ACTIVE_STATUSES

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    reference = models.CharField(_("reference"), max_length=16, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField(_("quantity"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    hold_expires_at = models.DateTimeField(_("hold expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now(), editable=False)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    expired_at = models.DateTimeField(_("expired at"), null=True, blank=True)
    customer_name = models.CharField(_("customer name"), max_length=200, blank=True, default="")
    customer_email = models.EmailField(_("customer email"), blank=True, default="")
    customer_phone = models.CharField(
        _("customer phone"), max_length=40, blank=True, default="", db_default=""
    )
    # Staff's own words about the booking (taken on the phone, a wheelchair place, ...).
    note = models.TextField(_("note"), blank=True, default="", db_default="")
    # The language the customer booked in: their emails are written in it.
    language = models.CharField(_("language"), max_length=8, blank=True, default="", db_default="")
    # A block: seats the house holds back, with no expiry, counted like any hold.
    blocked = models.BooleanField(_("blocked"), default=False, db_default=False)
    api_client = models.ForeignKey(
        ApiClient,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reservations",
        db_index=False,  # reservation_by_client leads with it
    )
    manage_token_hash = models.CharField(max_length=64, editable=False)
    # At the door (bookings.services.checkin): once, by the database clock; `checked_in_by`
    # names who did it (a staff user's name or an API client's).
    checked_in_at = models.DateTimeField(_("checked in at"), null=True, blank=True, editable=False)
    checked_in_by = models.CharField(
        _("checked in by"), max_length=200, blank=True, default="", db_default="", editable=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="reservation_reference_unique"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="reservation_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReservationStatus.values), name="reservation_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="held") | Q(hold_expires_at__isnull=False) | Q(blocked=True),
                name="reservation_hold_has_expiry",
            ),
            # A block is held until the house releases it (cancelled); it is never sold.
            models.CheckConstraint(
                condition=Q(blocked=False) | Q(status__in=["held", "cancelled"]),
                name="reservation_block_is_held_or_released",
            ),
            models.CheckConstraint(
                condition=~Q(status="confirmed") | Q(confirmed_at__isnull=False),
                name="reservation_confirmed_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | Q(cancelled_at__isnull=False),
                name="reservation_cancelled_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="expired") | Q(expired_at__isnull=False),
                name="reservation_expired_has_time",
            ),
            # A checked-in reservation stays confirmed: no path may cancel it.
            models.CheckConstraint(
                condition=Q(checked_in_at__isnull=True) | Q(status="confirmed"),
                name="reservation_checked_in_is_confirmed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["resource", "status"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="reservation_active_by_resource",
            ),
            models.Index(
                fields=["resource", "hold_expires_at"],
                condition=Q(status="held"),
                name="reservation_held_by_expiry",
            ),
            models.Index(fields=["api_client", "created_at"], name="reservation_by_client"),
            models.Index(fields=["created_at"], name="reservation_by_created"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    def staff_status(self, status: str | None = None) -> str:
        """`status` (by default the reservation's own) as staff read it: a house block
        still held is "blocked" (a block is only ever held, then cancelled)."""
        status = self.status if status is None else status
        if self.blocked and status == ReservationStatus.HELD:
            return "blocked"
        return status

    def staff_status_display(self, status: str | None = None) -> str:
        """The label of `staff_status`: "Blocked" for a house block still held."""
        status = self.status if status is None else status
        if self.staff_status(status) == "blocked":
            return str(_("Blocked"))
        try:
            return str(ReservationStatus(status).label)
        except ValueError:
            return status


class ReservationSeat(models.Model):
    """One seat of one reservation; `active` follows the reservation (set by the trigger)."""

    reservation = models.ForeignKey(
        Reservation,
        on_delete=models.CASCADE,
        related_name="seat_links",
        db_index=False,  # reservation_seat_once leads with it
    )
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="reservation_links")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="+")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["seat"], condition=Q(active=True), name="reservation_seat_active_unique"
            ),
            models.UniqueConstraint(fields=["reservation", "seat"], name="reservation_seat_once"),
        ]

    def __str__(self) -> str:
        return f"{self.reservation_id}:{self.seat_id}"


class ReservationEvent(models.Model):
    """Immutable history: one row per transition, written in the transition's transaction."""

    reservation = models.ForeignKey(
        Reservation,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # event_by_reservation leads with it
    )
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, choices=ReservationStatus.choices)
    actor = models.CharField(max_length=200)
    occurred_at = models.DateTimeField(db_default=Now(), editable=False)
    # What happened without a change of status (a check-in: "checked in").
    note = models.CharField(max_length=100, blank=True, default="", db_default="")
    # Why staff did it, in their words (a cancellation's reason is also in the email).
    reason = models.TextField(blank=True, default="", db_default="")

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["reservation", "occurred_at"], name="event_by_reservation")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"


class IdempotencyRecord(models.Model):
    """The first response to (client, Idempotency-Key), stored with the effect it records."""

    api_client = models.ForeignKey(
        ApiClient,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # idempotency_key_unique leads with it
    )
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    # NULL while the request that inserted it runs; its transaction fills it in with the
    # response before committing (bookings.api.idempotency).
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField()
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_client", "key"], name="idempotency_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_by_created")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class WebhookEndpoint(models.Model):
    api_client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # A Fernet token (bookings.webhook_secrets); `secret` reads and writes the plain text.
    secret_encrypted = models.TextField(editable=False)
    event_types = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # The circuit breaker (bookings.notifications): failed deliveries in a row, and while
    # the circuit is open, when the next delivery may probe the endpoint.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    circuit_open_until = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        """The signing secret in plain text; WebhookSecretUnreadable if no key decrypts it."""
        return webhook_secret_decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = webhook_secret_encrypt(value)


# The outbox event of a move to other seats: an email to the customer only (the webhook
# events are the status changes of bookings.notifications.EVENT_TYPES).
SEATS_CHANGED_EVENT = "reservation.seats_changed"


class OutboxMessage(models.Model):
    """A notification to deliver, written in the same transaction as the change it tells."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        DEAD = "dead", _("Dead")

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    reservation = models.ForeignKey(
        Reservation,
        on_delete=models.CASCADE,
        related_name="outbox",
        db_index=False,  # outbox_by_reservation
    )
    event_type = models.CharField(max_length=40)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=500)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_default=Now())
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Set by the worker that claimed the row; a worker whose lease ran out no longer owns it.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            # A change of status is told once to each target; a move to other seats is
            # told each time it happens.
            models.UniqueConstraint(
                fields=["reservation", "event_type", "channel", "target"],
                condition=~Q(event_type=SEATS_CHANGED_EVENT),
                name="outbox_once_per_event_and_target",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "dead"]), name="outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["email", "webhook"]), name="outbox_channel_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="outbox_due",
            ),
            models.Index(fields=["reservation"], name="outbox_by_reservation"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.channel}:{self.target}"


class DeliveryAttempt(models.Model):
    """One try at delivering an outbox message: the delivery log shown to staff."""

    message = models.ForeignKey(
        OutboxMessage,
        on_delete=models.CASCADE,
        related_name="log",
        db_index=False,  # delivery_by_message leads with it
    )
    attempt = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(db_default=Now(), editable=False)
    duration_ms = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [models.Index(fields=["message", "attempted_at"], name="delivery_by_message")]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"#{self.attempt} {outcome}"
