"""Webhook endpoints: signing secrets stored encrypted (bookings.webhook_secrets), and the
circuit breaker's state. Going back decrypts the secrets into the plain-text column."""

from django.db import migrations, models

from bookings.webhook_secrets import webhook_secret_decrypt, webhook_secret_encrypt


def encrypt_secrets(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, secret FROM bookings_webhookendpoint ORDER BY id")
        rows = cursor.fetchall()
        for endpoint_id, secret in rows:
            cursor.execute(
                "UPDATE bookings_webhookendpoint SET secret_encrypted = %s WHERE id = %s",
                [webhook_secret_encrypt(secret), endpoint_id],
            )


def decrypt_secrets(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, secret_encrypted FROM bookings_webhookendpoint ORDER BY id")
        rows = cursor.fetchall()
        for endpoint_id, token in rows:
            cursor.execute(
                "UPDATE bookings_webhookendpoint SET secret = %s WHERE id = %s",
                [webhook_secret_decrypt(token), endpoint_id],
            )


class Migration(migrations.Migration):
    dependencies = [("bookings", "0002_drop_booking_functions")]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="secret_encrypted",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
        # A default, so that going back can add the column to existing rows before it fills it.
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=models.CharField(default="", editable=False, max_length=64),
        ),
        migrations.RemoveField(model_name="webhookendpoint", name="secret"),
        migrations.AddField(
            model_name="webhookendpoint",
            name="consecutive_failures",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="circuit_open_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
