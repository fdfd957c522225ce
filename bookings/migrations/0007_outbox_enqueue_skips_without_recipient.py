"""reservo_outbox_enqueue returns at once when no changed reservation has a recipient.

Most bookings tell nobody: no customer email (box office, anonymous API bookings) and no
webhook endpoint of their API client. The outbox statement (0004, PL/pgSQL since 0005)
still ran whole for them, snapshot, joins and an INSERT that inserted nothing: 0.13 ms of
the 0.55 ms a booking spends in reservo_book, while the resource row is locked. A guard
now checks first that some changed reservation has an email or an API client with an
active endpoint, a condition each branch of the statement requires; the statement itself,
and so who is told what, is unchanged. Measured in one session: 0.13 ms → 0.03 ms per
call, the booking transaction 1.08 ms → 0.92 ms.

The function is re-created around its current body, so the statement stays written once
(0004), and keeps its settings (0005).
"""

from django.db import migrations

GUARD = (
    "IF EXISTS (SELECT FROM bookings_reservation r WHERE r.id = ANY(p_ids)"
    " AND (r.customer_email <> '' OR r.api_client_id IN"
    " (SELECT w.api_client_id FROM bookings_webhookendpoint w WHERE w.active))) THEN"
)

# GUARD inside an SQL string literal.
GUARD_TEXT = GUARD.replace("'", "''")

# Re-creates reservo_outbox_enqueue with the body :body (an expression of `body`, its
# current one), keeping its settings.
OUTBOX_ENQUEUE_WITH_BODY = r"""
DO $do$
DECLARE
    fn regprocedure := 'reservo_outbox_enqueue(bigint[], text[], text[])'::regprocedure;
    body text := (SELECT prosrc FROM pg_proc WHERE oid = fn);
    settings text[] := (SELECT coalesce(proconfig, '{}') FROM pg_proc WHERE oid = fn);
    setting text;
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION reservo_outbox_enqueue('
                   'p_ids bigint[], p_tokens text[], p_emailed text[]) '
                   'RETURNS void LANGUAGE plpgsql AS %L', :body);
    FOREACH setting IN ARRAY settings LOOP
        EXECUTE format('ALTER FUNCTION %s SET %s = %L', fn,
                       split_part(setting, '=', 1), split_part(setting, '=', 2));
    END LOOP;
END
$do$;
"""

FORWARD = OUTBOX_ENQUEUE_WITH_BODY.replace(
    ":body",
    f"regexp_replace(regexp_replace(body, '^BEGIN', 'BEGIN {GUARD_TEXT}'), '; END$', "
    "'; END IF; END')",
)
BACKWARD = OUTBOX_ENQUEUE_WITH_BODY.replace(
    ":body",
    f"regexp_replace(replace(body, 'BEGIN {GUARD_TEXT}', 'BEGIN'), '; END IF; END$', '; END')",
)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0006_fk_indexes_covered")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
