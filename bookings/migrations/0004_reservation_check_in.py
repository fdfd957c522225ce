"""Check-in at the door: when and by whom a reservation was checked in, a note on history
rows that record something other than a change of status, and the guard that keeps a
checked-in reservation confirmed (so that no path can cancel it)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bookings", "0003_webhook_secret_encrypted_and_circuit")]

    operations = [
        migrations.AddField(
            model_name="reservation",
            name="checked_in_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="checked in at"
            ),
        ),
        migrations.AddField(
            model_name="reservation",
            name="checked_in_by",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=200,
                verbose_name="checked in by",
            ),
        ),
        migrations.AddField(
            model_name="reservationevent",
            name="note",
            field=models.CharField(blank=True, db_default="", default="", max_length=100),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("checked_in_at__isnull", True), ("status", "confirmed"), _connector="OR"
                ),
                name="reservation_checked_in_is_confirmed",
            ),
        ),
    ]
