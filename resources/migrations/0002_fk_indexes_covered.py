"""Drop the seat's resource index: seat_label_unique (resource, label) already leads with it."""

import django.db.models.deletion
from django.db import migrations, models

DROP = """
DROP INDEX IF EXISTS "resources_seat_resource_id_6a502920";
"""
CREATE = """
CREATE INDEX IF NOT EXISTS "resources_seat_resource_id_6a502920" ON "resources_seat" ("resource_id");
"""


class Migration(migrations.Migration):
    dependencies = [
        ("resources", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # Only the indexes go: Django's own AlterField would also drop and re-add (and so
            # re-validate) each foreign key.
            database_operations=[migrations.RunSQL(DROP, CREATE)],
            state_operations=[
                migrations.AlterField(
                    model_name="seat",
                    name="resource",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="seats",
                        to="resources.resource",
                    ),
                ),
            ],
        )
    ]
