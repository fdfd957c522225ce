"""reservo_outbox_enqueue returns at once when no changed reservation has a recipient.

Most bookings tell nobody: no customer email (box office, anonymous API bookings) and no
webhook endpoint of their API client. The outbox statement (0004, PL/pgSQL since 0005)
still ran whole for them, snapshot, joins and an INSERT that inserted nothing: 0.13 ms of
the 0.55 ms a booking spends in reservo_book, while the resource row is locked. A guard
now checks first that some changed reservation has an email or an API client with an
active endpoint, a condition each branch of the statement requires; the statement itself,
and so who is told what, is unchanged. Measured in one session: 0.13 ms → 0.03 ms per
call, the booking transaction 1.08 ms → 0.92 ms.

The function is re-created around its current body as 0005 does it, so the statement
stays written once (0004), and keeps its generic plans (0005).
"""

import importlib

from django.db import migrations

GUARD = (
    "IF EXISTS (SELECT FROM bookings_reservation r WHERE r.id = ANY(p_ids)"
    " AND (r.customer_email <> '' OR r.api_client_id IN"
    " (SELECT w.api_client_id FROM bookings_webhookendpoint w WHERE w.active))) THEN"
)

# GUARD inside an SQL string literal.
GUARD_TEXT = GUARD.replace("'", "''")

# 0005's re-creation of the function around its current body (`statement`), and its setting.
plans = importlib.import_module("bookings.migrations.0005_booking_function_plans")


def recreated(body: str) -> str:
    """reservo_outbox_enqueue re-created in PL/pgSQL with the body `body` (an expression of
    `statement`, its current body), keeping its generic plans."""
    return plans.OUTBOX_ENQUEUE_AS.replace(":language", "plpgsql").replace(
        ":body", body
    ) + plans.KEEP_PLANS.format(function=plans.FUNCTIONS[0])


FORWARD = recreated(
    f"regexp_replace(regexp_replace(statement, '^BEGIN', 'BEGIN {GUARD_TEXT}'), '; END$', "
    "'; END IF; END')"
)
BACKWARD = recreated(
    f"regexp_replace(replace(statement, 'BEGIN {GUARD_TEXT}', 'BEGIN'), '; END IF; END$', '; END')"
)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0006_fk_indexes_covered")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
