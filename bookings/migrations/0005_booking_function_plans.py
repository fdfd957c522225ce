"""The booking functions keep their plans: the database's CPU per booking halves.

- reservo_outbox_enqueue (0004) becomes PL/pgSQL, with the same statement: PostgreSQL
  plans a LANGUAGE sql function's body again on every call, PL/pgSQL keeps the plan for
  the session. The statement is taken from the function as 0004 created it, so it is
  written in one place.
- The functions of 0004 and the counter trigger (0002) run their statements with generic
  plans. With the default plan_cache_mode, PostgreSQL kept planning them again for each
  call's parameters, a custom plan looking cheaper; none of them has a plan that depends
  on its parameters' values (each finds its rows by key or by a partial index).

Measured in one session: the database's CPU per booking transaction went from about
1.3 ms to 0.65 ms, the difference being planning done while the resource row is locked.

The price: a generic plan is kept until the tables' statistics change (autovacuum's
ANALYZE, after 10 % of a table's rows changed, within a minute by default). A plan made
while the reservations table was analysed nearly empty scans it whole until then; the
benchmark's first round, on a freshly emptied database, shows it.
"""

from django.db import migrations

FUNCTIONS = [
    "reservo_outbox_enqueue(bigint[], text[], text[])",
    "reservo_expire_due_holds(bigint, text, text[])",
    "reservo_idempotency_claim(bigint, text, text, text)",
    "reservo_book(bigint, integer, bigint[], boolean, text[], text, text, bigint, text, text,"
    " text, boolean, text[], jsonb, text, text)",
    "reservo_reservation_counters()",
]

# Re-creates reservo_outbox_enqueue in :language, with the body :body (an expression of
# `statement`, its current body).
OUTBOX_ENQUEUE_AS = r"""
DO $do$
DECLARE
    statement text := (SELECT prosrc FROM pg_proc
                        WHERE oid = 'reservo_outbox_enqueue(bigint[], text[], text[])'::regprocedure);
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION reservo_outbox_enqueue('
                   'p_ids bigint[], p_tokens text[], p_emailed text[]) '
                   'RETURNS void LANGUAGE :language AS %L', :body);
END
$do$;
"""

KEEP_PLANS = "ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan;\n"

FORWARD = OUTBOX_ENQUEUE_AS.replace(":language", "plpgsql").replace(
    ":body", "'BEGIN' || statement || '; END'"
) + "".join(KEEP_PLANS.format(function=function) for function in FUNCTIONS)
BACKWARD = "".join(
    f"ALTER FUNCTION {function} RESET plan_cache_mode;\n" for function in FUNCTIONS
) + OUTBOX_ENQUEUE_AS.replace(":language", "sql").replace(
    ":body", r"regexp_replace(statement, '^BEGIN(.*); END$', '\1')"
)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0004_booking_functions")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
