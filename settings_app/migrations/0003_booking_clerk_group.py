"""The "booking clerk" staff group and the reservation permissions the admin actions check."""

from django.db import migrations

from settings_app.permissions import booking_clerk_group_ensure, booking_clerk_group_remove


def create_group(apps, schema_editor):
    booking_clerk_group_ensure(apps)


def remove_group(apps, schema_editor):
    booking_clerk_group_remove(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("settings_app", "0002_singleton_row"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("bookings", "0001_squashed_0012_transition_function"),
        ("resources", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
