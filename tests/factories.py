"""factory-boy factories for the suite. Writes that change reservations go through services."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from bookings.models import ApiClient
from resources.models import Resource, ResourceKind, ResourceState, Seat


class ResourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Resource

    name = factory.Sequence(lambda n: f"Event {n}")
    slug = factory.Sequence(lambda n: f"event-{n}")
    kind = ResourceKind.CAPACITY
    capacity = 10
    state = ResourceState.OPEN
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    max_per_booking = None


class SeatedResourceFactory(ResourceFactory):
    """A seated resource with `rows` x `per_row` seats (A1..). Capacity follows the seats."""

    class Meta:
        skip_postgeneration_save = True

    kind = ResourceKind.SEATED
    capacity = 1

    @factory.post_generation
    def seats(self, create: bool, extracted: object, **kwargs: object) -> None:
        rows = kwargs.get("rows", ["A", "B"])
        per_row = int(kwargs.get("per_row", 5))  # type: ignore[call-overload]
        Seat.objects.bulk_create(
            Seat(resource=self, label=f"{row}{n}", row=row, number=n)
            for row in rows  # type: ignore[attr-defined]
            for n in range(1, per_row + 1)
        )
        Resource.objects.filter(pk=self.pk).update(capacity=self.seats.count())
        self.refresh_from_db()


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"client-{n}")
    key_prefix = factory.Sequence(lambda n: f"p{n:07d}")
    key_hash = "0" * 64
    scopes = factory.LazyFunction(lambda: [ApiClient.Scope.BOOK])
