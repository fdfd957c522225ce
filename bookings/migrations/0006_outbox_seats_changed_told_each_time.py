"""The outbox tells a move to other seats each time it happens (a change of status stays
told once per target); the reservation's rows keep an index of their own."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_reservation_staff_fields"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(fields=["reservation"], name="outbox_by_reservation"),
        ),
        migrations.RemoveConstraint(
            model_name="outboxmessage",
            name="outbox_once_per_event_and_target",
        ),
        migrations.AddConstraint(
            model_name="outboxmessage",
            constraint=models.UniqueConstraint(
                condition=~models.Q(event_type="reservation.seats_changed"),
                fields=("reservation", "event_type", "channel", "target"),
                name="outbox_once_per_event_and_target",
            ),
        ),
    ]
