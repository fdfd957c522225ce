"""Idempotency records that hold the effect's outcome instead of the rendered answer.

A booking's statement writes its request's record itself, in the same query, and commits
(bookings.api.idempotency.OutcomeRecord): the record then holds the outcome that
`reservo_book` returned and the request's language, under `response_body`, with no
status, and every answer to the request is rendered from them. Records of the rendered
answer keep their status.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bookings", "0010_booking_functions_without_jit")]

    operations = [
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_status",
            field=models.PositiveSmallIntegerField(null=True),
        ),
        migrations.AddConstraint(
            model_name="idempotencyrecord",
            constraint=models.CheckConstraint(
                condition=models.Q(response_status__isnull=False)
                | models.Q(response_body__has_keys=["outcome", "language"]),
                name="idempotency_answer_or_outcome",
            ),
        ),
    ]
