"""Drop the seat's resource index: seat_label_unique (resource, label) already leads with it."""

import django.db.models.deletion
from django.db import migrations, models

# (index, table, column): each foreign key's own index, which Django created.
INDEXES = [
    ("resources_seat_resource_id_6a502920", "resources_seat", "resource_id"),
]
DROP = "".join(f'DROP INDEX IF EXISTS "{index}";\n' for index, _table, _column in INDEXES)
CREATE = "".join(
    f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}");\n'
    for index, table, column in INDEXES
)


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
