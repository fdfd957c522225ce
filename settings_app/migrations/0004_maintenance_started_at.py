from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("settings_app", "0003_booking_clerk_group")]

    operations = [
        migrations.AddField(
            model_name="systemsettings",
            name="maintenance_started_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
