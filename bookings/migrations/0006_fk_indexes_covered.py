"""Drop the foreign keys' own indexes that a composite index or unique constraint already
leads with: every booking wrote them for nothing (the reservation's api_client, its history
row's and seats' reservation, the idempotency record's api_client)."""

import django.db.models.deletion
from django.db import migrations, models

DROP = """
DROP INDEX IF EXISTS "bookings_deliveryattempt_message_id_f6b1a153";
DROP INDEX IF EXISTS "bookings_idempotencyrecord_api_client_id_a1acb938";
DROP INDEX IF EXISTS "bookings_outboxmessage_reservation_id_f3f8bb03";
DROP INDEX IF EXISTS "bookings_reservation_api_client_id_a3d1290f";
DROP INDEX IF EXISTS "bookings_reservationevent_reservation_id_0ef9f77b";
DROP INDEX IF EXISTS "bookings_reservationseat_reservation_id_ea98c2cb";
"""
CREATE = """
CREATE INDEX IF NOT EXISTS "bookings_deliveryattempt_message_id_f6b1a153" ON "bookings_deliveryattempt" ("message_id");
CREATE INDEX IF NOT EXISTS "bookings_idempotencyrecord_api_client_id_a1acb938" ON "bookings_idempotencyrecord" ("api_client_id");
CREATE INDEX IF NOT EXISTS "bookings_outboxmessage_reservation_id_f3f8bb03" ON "bookings_outboxmessage" ("reservation_id");
CREATE INDEX IF NOT EXISTS "bookings_reservation_api_client_id_a3d1290f" ON "bookings_reservation" ("api_client_id");
CREATE INDEX IF NOT EXISTS "bookings_reservationevent_reservation_id_0ef9f77b" ON "bookings_reservationevent" ("reservation_id");
CREATE INDEX IF NOT EXISTS "bookings_reservationseat_reservation_id_ea98c2cb" ON "bookings_reservationseat" ("reservation_id");
"""


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
