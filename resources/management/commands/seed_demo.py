"""Demo data: a few events, tables and tours; running it again changes nothing."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from resources.models import Resource, ResourceKind
from resources.services import resource_create, seat_specs_from_rows

DEMO_RESOURCES: list[dict[str, Any]] = [
    {
        "slug": "friday-python-meetup",
        "name": "Friday Python meetup",
        "venue": "Le Wagon, Paris",
        "description": "Three short talks, pizza and a lot of questions.",
        "capacity": 40,
        "days": 5,
        "hour": 19,
        "max_per_booking": 4,
    },
    {
        "slug": "sourdough-workshop",
        "name": "Sourdough bread workshop",
        "venue": "Boulangerie Moreau",
        "description": "Bake your own loaf from starter to crust. Aprons provided.",
        "capacity": 12,
        "days": 9,
        "hour": 10,
        "max_per_booking": 2,
    },
    {
        "slug": "old-town-walking-tour",
        "name": "Old town walking tour",
        "venue": "Meet at the cathedral steps",
        "description": "Two hours through the medieval quarter with a local guide.",
        "capacity": 25,
        "days": 3,
        "hour": 14,
        "max_per_booking": 6,
    },
    {
        "slug": "chamber-concert",
        "name": "Chamber concert: Schubert quintet",
        "venue": "Salle Cortot",
        "description": "An evening of Schubert. Choose your seats.",
        "rows": ["A", "B", "C", "D", "E"],
        "per_row": 10,
        "days": 12,
        "hour": 20,
        "max_per_booking": 6,
    },
    {
        "slug": "comedy-night",
        "name": "Stand-up comedy night",
        "venue": "The Basement",
        "description": "Five comedians, one microphone. Seats at small tables.",
        "rows": ["A", "B", "C"],
        "per_row": 8,
        "days": 2,
        "hour": 21,
        "max_per_booking": 4,
    },
]


class Command(BaseCommand):
    help = "Create the demo resources (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.localtime().replace(minute=0, second=0, microsecond=0)
        created = 0
        for spec in DEMO_RESOURCES:
            if Resource.objects.filter(slug=spec["slug"]).exists():
                continue
            starts_at = (today + timedelta(days=spec["days"])).replace(hour=spec["hour"])
            seated = "rows" in spec
            resource_create(
                name=spec["name"],
                slug=spec["slug"],
                kind=ResourceKind.SEATED if seated else ResourceKind.CAPACITY,
                capacity=None if seated else spec["capacity"],
                seats=seat_specs_from_rows(spec["rows"], spec["per_row"]) if seated else (),
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=2),
                max_per_booking=spec["max_per_booking"],
                description=spec["description"],
                venue=spec["venue"],
            )
            created += 1
        self.stdout.write(f"{created} demo resource(s) created")
