"""Drop the foreign keys' own indexes that a composite index or unique constraint already
leads with: every booking wrote them for nothing (the reservation's api_client, its history
row's and seats' reservation, the idempotency record's api_client)."""

import django.db.models.deletion
from django.db import migrations, models

# (index, table, column): each foreign key's own index, which Django created.
INDEXES = [
    ("bookings_deliveryattempt_message_id_f6b1a153", "bookings_deliveryattempt", "message_id"),
    (
        "bookings_idempotencyrecord_api_client_id_a1acb938",
        "bookings_idempotencyrecord",
        "api_client_id",
    ),
    ("bookings_outboxmessage_reservation_id_f3f8bb03", "bookings_outboxmessage", "reservation_id"),
    ("bookings_reservation_api_client_id_a3d1290f", "bookings_reservation", "api_client_id"),
    (
        "bookings_reservationevent_reservation_id_0ef9f77b",
        "bookings_reservationevent",
        "reservation_id",
    ),
    (
        "bookings_reservationseat_reservation_id_ea98c2cb",
        "bookings_reservationseat",
        "reservation_id",
    ),
]
DROP = "".join(f'DROP INDEX IF EXISTS "{index}";\n' for index, _table, _column in INDEXES)
CREATE = "".join(
    f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}");\n'
    for index, table, column in INDEXES
)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_booking_function_plans"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # Only the indexes go: Django's own AlterField would also drop and re-add (and so
            # re-validate) each foreign key.
            database_operations=[migrations.RunSQL(DROP, CREATE)],
            state_operations=[
                migrations.AlterField(
                    model_name="deliveryattempt",
                    name="message",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log",
                        to="bookings.outboxmessage",
                    ),
                ),
                migrations.AlterField(
                    model_name="idempotencyrecord",
                    name="api_client",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="bookings.apiclient",
                    ),
                ),
                migrations.AlterField(
                    model_name="outboxmessage",
                    name="reservation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outbox",
                        to="bookings.reservation",
                    ),
                ),
                migrations.AlterField(
                    model_name="reservation",
                    name="api_client",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reservations",
                        to="bookings.apiclient",
                    ),
                ),
                migrations.AlterField(
                    model_name="reservationevent",
                    name="reservation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="bookings.reservation",
                    ),
                ),
                migrations.AlterField(
                    model_name="reservationseat",
                    name="reservation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="seat_links",
                        to="bookings.reservation",
                    ),
                ),
            ],
        )
    ]
