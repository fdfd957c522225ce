"""Creates the one SystemSettings row every reader relies on."""

from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("settings_app", "SystemSettings").objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("settings_app", "0001_initial")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
