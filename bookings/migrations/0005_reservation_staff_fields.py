"""What staff keep on a reservation (phone, note), the language it was booked in, blocks of
seats held by the house with no expiry, and the reason staff give on a history row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0004_reservation_check_in"),
        ("resources", "0003_sales_window"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="reservation",
            name="reservation_hold_has_expiry",
        ),
        migrations.AddField(
            model_name="reservation",
            name="blocked",
            field=models.BooleanField(db_default=False, default=False, verbose_name="blocked"),
        ),
        migrations.AddField(
            model_name="reservation",
            name="customer_phone",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=40, verbose_name="customer phone"
            ),
        ),
        migrations.AddField(
            model_name="reservation",
            name="language",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=8, verbose_name="language"
            ),
        ),
        migrations.AddField(
            model_name="reservation",
            name="note",
            field=models.TextField(blank=True, db_default="", default="", verbose_name="note"),
        ),
        migrations.AddField(
            model_name="reservationevent",
            name="reason",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "held"), _negated=True),
                    ("hold_expires_at__isnull", False),
                    ("blocked", True),
                    _connector="OR",
                ),
                name="reservation_hold_has_expiry",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("blocked", False), ("status__in", ["held", "cancelled"]), _connector="OR"
                ),
                name="reservation_block_is_held_or_released",
            ),
        ),
    ]
