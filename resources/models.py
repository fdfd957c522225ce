"""Resources (events, tables, tours, stock) and their seats."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _


class ResourceKind(models.TextChoices):
    CAPACITY = "capacity", _("Places")
    SEATED = "seated", _("Seated")


class ResourceState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")


class Resource(models.Model):
    Kind = ResourceKind
    State = ResourceState

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True, default="")
    venue = models.CharField(_("venue"), max_length=200, blank=True, default="")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.CAPACITY)
    capacity = models.PositiveIntegerField(_("capacity"))
    # Maintained only by the reservation counter trigger (see migration 0002 in bookings).
    held = models.IntegerField(_("held"), default=0, editable=False)
    confirmed = models.IntegerField(_("confirmed"), default=0, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    max_per_booking = models.PositiveIntegerField(_("max per booking"), null=True, blank=True)
    # The sales window; with no close time, sales close when the event starts.
    sales_open_at = models.DateTimeField(_("sales open at"), null=True, blank=True)
    sales_close_at = models.DateTimeField(_("sales close at"), null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["state", "starts_at"], name="resource_state_starts")]
        constraints = [
            models.CheckConstraint(condition=Q(capacity__gt=0), name="resource_capacity_positive"),
            models.CheckConstraint(condition=Q(held__gte=0), name="resource_held_non_negative"),
            models.CheckConstraint(
                condition=Q(confirmed__gte=0), name="resource_confirmed_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(held__lte=F("capacity") - F("confirmed")),
                name="resource_counters_within_capacity",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ResourceKind.values), name="resource_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=ResourceState.values), name="resource_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(max_per_booking__isnull=True) | Q(max_per_booking__gte=1),
                name="resource_max_per_booking_positive",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(ends_at__gt=F("starts_at")),
                name="resource_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(sales_open_at__isnull=True)
                | Q(sales_close_at__isnull=True)
                | Q(sales_close_at__gt=F("sales_open_at")),
                name="resource_sales_close_after_open",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.confirmed

    @property
    def sales_end(self) -> datetime | None:
        """When sales close: the close time, or else the start of the event."""
        return self.sales_close_at or self.starts_at


class Seat(models.Model):
    resource = models.ForeignKey(
        Resource,
        on_delete=models.CASCADE,
        related_name="seats",
        db_index=False,  # seat_label_unique leads with it
    )
    label = models.CharField(_("label"), max_length=20)
    row = models.CharField(_("row"), max_length=10, blank=True, default="")
    number = models.PositiveIntegerField(_("number"), null=True, blank=True)

    class Meta:
        ordering = ["resource_id", "row", "number", "label"]
        constraints = [
            models.UniqueConstraint(fields=["resource", "label"], name="seat_label_unique"),
            # Target of the composite foreign key that keeps reservation seats on their
            # own resource (bookings migration 0002).
            models.UniqueConstraint(fields=["id", "resource"], name="seat_id_resource_unique"),
        ]

    def __str__(self) -> str:
        return self.label
