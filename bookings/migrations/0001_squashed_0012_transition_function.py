"""Reservations, their seats and history, API clients, idempotency records and the outbox,
with the guards PostgreSQL keeps whatever the code does:

- reservo_reservation_counters: AFTER INSERT/UPDATE/DELETE on reservations, adjusts the
  resource's held/confirmed counters for every change of status, quantity or resource,
  and deactivates a reservation's seats when it stops being active. The CHECK
  resource_counters_within_capacity then refuses any change that would overbook.
- reservo_resource_counters_guard: refuses any write of held/confirmed that does not
  come from that trigger (a raw UPDATE, an admin save of stale values).
- A composite foreign key keeps every reservation seat on its own resource.

The rules themselves live in Python (bookings.services); these are trigger functions only.
"""

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

FORWARD = """
CREATE FUNCTION reservo_reservation_counters() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_held integer := 0;
    old_confirmed integer := 0;
    new_held integer := 0;
    new_confirmed integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_held := CASE WHEN OLD.status = 'held' THEN OLD.quantity ELSE 0 END;
        old_confirmed := CASE WHEN OLD.status = 'confirmed' THEN OLD.quantity ELSE 0 END;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_held := CASE WHEN NEW.status = 'held' THEN NEW.quantity ELSE 0 END;
        new_confirmed := CASE WHEN NEW.status = 'confirmed' THEN NEW.quantity ELSE 0 END;
    END IF;

    IF TG_OP = 'UPDATE' AND OLD.resource_id = NEW.resource_id THEN
        IF new_held <> old_held OR new_confirmed <> old_confirmed THEN
            UPDATE resources_resource
               SET held = held + new_held - old_held,
                   confirmed = confirmed + new_confirmed - old_confirmed
             WHERE id = NEW.resource_id;
        END IF;
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') AND (old_held <> 0 OR old_confirmed <> 0) THEN
            UPDATE resources_resource
               SET held = held - old_held, confirmed = confirmed - old_confirmed
             WHERE id = OLD.resource_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND (new_held <> 0 OR new_confirmed <> 0) THEN
            UPDATE resources_resource
               SET held = held + new_held, confirmed = confirmed + new_confirmed
             WHERE id = NEW.resource_id;
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' AND OLD.status IN ('held', 'confirmed')
       AND NEW.status NOT IN ('held', 'confirmed') THEN
        UPDATE bookings_reservationseat SET active = false
         WHERE reservation_id = NEW.id AND active;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER reservo_reservation_counters
AFTER INSERT OR UPDATE OF status, quantity, resource_id OR DELETE ON bookings_reservation
FOR EACH ROW EXECUTE FUNCTION reservo_reservation_counters();

CREATE FUNCTION reservo_resource_counters_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Depth 1 is a statement from a client; the counter trigger's own UPDATE runs at depth 2.
    IF pg_trigger_depth() < 2 THEN
        IF TG_OP = 'INSERT' AND (NEW.held <> 0 OR NEW.confirmed <> 0) THEN
            RAISE EXCEPTION 'resource counters start at zero'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'resource_counters_by_trigger_only';
        END IF;
        IF TG_OP = 'UPDATE' AND (NEW.held <> OLD.held OR NEW.confirmed <> OLD.confirmed) THEN
            RAISE EXCEPTION 'resource counters are maintained by the reservation trigger'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'resource_counters_by_trigger_only';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER reservo_resource_counters_guard
BEFORE INSERT OR UPDATE OF held, confirmed ON resources_resource
FOR EACH ROW EXECUTE FUNCTION reservo_resource_counters_guard();

ALTER TABLE bookings_reservationseat
    ADD CONSTRAINT reservation_seat_on_own_resource
    FOREIGN KEY (seat_id, resource_id) REFERENCES resources_seat (id, resource_id)
    DEFERRABLE INITIALLY DEFERRED;
"""

BACKWARD = """
ALTER TABLE bookings_reservationseat DROP CONSTRAINT reservation_seat_on_own_resource;
DROP TRIGGER reservo_resource_counters_guard ON resources_resource;
DROP FUNCTION reservo_resource_counters_guard();
DROP TRIGGER reservo_reservation_counters ON bookings_reservation;
DROP FUNCTION reservo_reservation_counters();
"""


class Migration(migrations.Migration):
    initial = True

    replaces = [
        ("bookings", "0001_initial"),
        ("bookings", "0002_counter_trigger"),
        ("bookings", "0003_outbox_delivery_log"),
        ("bookings", "0004_booking_functions"),
        ("bookings", "0005_booking_function_plans"),
        ("bookings", "0006_fk_indexes_covered"),
        ("bookings", "0007_outbox_enqueue_skips_without_recipient"),
        ("bookings", "0008_booking_plans_use_indexes"),
        ("bookings", "0009_idempotency_claim_first"),
        ("bookings", "0010_booking_functions_without_jit"),
        ("bookings", "0011_idempotency_outcome_records"),
        ("bookings", "0012_transition_function"),
    ]

    dependencies = [
        ("resources", "0001_initial"),
        ("settings_app", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiClient",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True, verbose_name="name")),
                ("key_prefix", models.CharField(editable=False, max_length=16, unique=True)),
                ("key_hash", models.CharField(editable=False, max_length=64)),
                (
                    "scopes",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            choices=[("book", "book"), ("manage", "manage")], max_length=16
                        ),
                        default=list,
                        size=None,
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                (
                    "revoked_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="revoked at"),
                ),
                (
                    "last_used_at",
                    models.DateTimeField(
                        blank=True, editable=False, null=True, verbose_name="last used at"
                    ),
                ),
            ],
            options={
                "verbose_name": "API client",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("scopes__contained_by", ["book", "manage"])),
                        name="api_client_scopes_valid",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Reservation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("public_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "reference",
                    models.CharField(editable=False, max_length=16, verbose_name="reference"),
                ),
                ("quantity", models.PositiveIntegerField(verbose_name="quantity")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("held", "Held"),
                            ("confirmed", "Confirmed"),
                            ("cancelled", "Cancelled"),
                            ("expired", "Expired"),
                        ],
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                (
                    "hold_expires_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="hold expires at"),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        editable=False,
                        verbose_name="created at",
                    ),
                ),
                (
                    "confirmed_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="confirmed at"),
                ),
                (
                    "cancelled_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="cancelled at"),
                ),
                (
                    "expired_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="expired at"),
                ),
                (
                    "customer_name",
                    models.CharField(
                        blank=True, default="", max_length=200, verbose_name="customer name"
                    ),
                ),
                (
                    "customer_email",
                    models.EmailField(
                        blank=True, default="", max_length=254, verbose_name="customer email"
                    ),
                ),
                ("manage_token_hash", models.CharField(editable=False, max_length=64)),
                (
                    "api_client",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reservations",
                        to="bookings.apiclient",
                    ),
                ),
                (
                    "resource",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reservations",
                        to="resources.resource",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("event_type", models.CharField(max_length=40)),
                (
                    "channel",
                    models.CharField(
                        choices=[("email", "Email"), ("webhook", "Webhook")], max_length=16
                    ),
                ),
                ("target", models.CharField(max_length=500)),
                ("payload", models.JSONField(default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("delivered", "Delivered"),
                            ("dead", "Dead"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                (
                    "next_attempt_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("last_error", models.TextField(blank=True, default="")),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("claim_token", models.UUIDField(blank=True, editable=False, null=True)),
                (
                    "reservation",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outbox",
                        to="bookings.reservation",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ReservationEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("from_status", models.CharField(blank=True, default="", max_length=16)),
                (
                    "to_status",
                    models.CharField(
                        choices=[
                            ("held", "Held"),
                            ("confirmed", "Confirmed"),
                            ("cancelled", "Cancelled"),
                            ("expired", "Expired"),
                        ],
                        max_length=16,
                    ),
                ),
                ("actor", models.CharField(max_length=200)),
                (
                    "occurred_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                (
                    "reservation",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="bookings.reservation",
                    ),
                ),
            ],
            options={
                "ordering": ["occurred_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="ReservationSeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("active", models.BooleanField(default=True)),
                (
                    "reservation",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="seat_links",
                        to="bookings.reservation",
                    ),
                ),
                (
                    "resource",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="resources.resource",
                    ),
                ),
                (
                    "seat",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reservation_links",
                        to="resources.seat",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("url", models.URLField(max_length=500)),
                ("secret", models.CharField(editable=False, max_length=64)),
                (
                    "event_types",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=40),
                        blank=True,
                        default=list,
                        size=None,
                    ),
                ),
                ("active", models.BooleanField(default=True)),
                ("disabled_reason", models.CharField(blank=True, default="", max_length=200)),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                (
                    "api_client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhooks",
                        to="bookings.apiclient",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="IdempotencyRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=255)),
                ("method", models.CharField(max_length=10)),
                ("path", models.CharField(max_length=500)),
                ("request_hash", models.CharField(max_length=64)),
                ("response_status", models.PositiveSmallIntegerField(null=True)),
                ("response_body", models.JSONField()),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                (
                    "api_client",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="bookings.apiclient",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["created_at"], name="idempotency_by_created")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("api_client", "key"), name="idempotency_key_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="DeliveryAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("attempt", models.PositiveIntegerField()),
                (
                    "attempted_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(), editable=False
                    ),
                ),
                ("duration_ms", models.PositiveIntegerField(default=0)),
                ("succeeded", models.BooleanField()),
                ("response_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("error", models.TextField(blank=True, default="")),
                ("worker", models.CharField(blank=True, default="", max_length=100)),
                (
                    "message",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log",
                        to="bookings.outboxmessage",
                    ),
                ),
            ],
            options={
                "ordering": ["-attempted_at", "-id"],
                "indexes": [
                    models.Index(fields=["message", "attempted_at"], name="delivery_by_message")
                ],
            },
        ),
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(
                condition=models.Q(("status__in", ("held", "confirmed"))),
                fields=["resource", "status"],
                name="reservation_active_by_resource",
            ),
        ),
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(
                condition=models.Q(("status", "held")),
                fields=["resource", "hold_expires_at"],
                name="reservation_held_by_expiry",
            ),
        ),
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(fields=["api_client", "created_at"], name="reservation_by_client"),
        ),
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(fields=["created_at"], name="reservation_by_created"),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.UniqueConstraint(
                fields=("reference",), name="reservation_reference_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(("quantity__gte", 1)), name="reservation_quantity_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["held", "confirmed", "cancelled", "expired"])),
                name="reservation_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "held"), _negated=True),
                    ("hold_expires_at__isnull", False),
                    _connector="OR",
                ),
                name="reservation_hold_has_expiry",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "confirmed"), _negated=True),
                    ("confirmed_at__isnull", False),
                    _connector="OR",
                ),
                name="reservation_confirmed_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "cancelled"), _negated=True),
                    ("cancelled_at__isnull", False),
                    _connector="OR",
                ),
                name="reservation_cancelled_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "expired"), _negated=True),
                    ("expired_at__isnull", False),
                    _connector="OR",
                ),
                name="reservation_expired_has_time",
            ),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["next_attempt_at"],
                name="outbox_due",
            ),
        ),
        migrations.AddConstraint(
            model_name="outboxmessage",
            constraint=models.UniqueConstraint(
                fields=("reservation", "event_type", "channel", "target"),
                name="outbox_once_per_event_and_target",
            ),
        ),
        migrations.AddConstraint(
            model_name="outboxmessage",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "delivered", "dead"])),
                name="outbox_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="outboxmessage",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", ["email", "webhook"])),
                name="outbox_channel_valid",
            ),
        ),
        migrations.AddIndex(
            model_name="reservationevent",
            index=models.Index(fields=["reservation", "occurred_at"], name="event_by_reservation"),
        ),
        migrations.AddConstraint(
            model_name="reservationseat",
            constraint=models.UniqueConstraint(
                condition=models.Q(("active", True)),
                fields=("seat",),
                name="reservation_seat_active_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="reservationseat",
            constraint=models.UniqueConstraint(
                fields=("reservation", "seat"), name="reservation_seat_once"
            ),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
