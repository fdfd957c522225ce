"""The booking path's plans find rows by index even when made while its tables were small.

A session keeps the booking functions' generic plans (0005), and PostgreSQL's own plans for
the foreign-key checks, until the tables' statistics change. A plan made while the
reservations or idempotency table was analysed nearly empty scans it whole: on a young
installation, the first big sale ran every booking through four sequential scans of
tables growing by one row per booking (reservations: the due-hold expiry, the outbox
guard, the history row's foreign-key check; idempotency records: the claim), until
autovacuum analysed them again, a minute later. Benchmark sessions on freshly emptied,
analysed tables read millions of rows per 2,000 bookings this way.

- The booking functions run with `enable_seqscan = off`: each of their statements finds
  its rows by key or by a partial index, so an index plan is the right one at any size;
  a table without a usable index is still scanned.
- The foreign keys of the rows the booking functions write (reservations, their history,
  seats and outbox messages) are checked when each row is written instead of at COMMIT,
  so inside the functions and under their settings. Django creates them
  `DEFERRABLE INITIALLY DEFERRED`; none of Reservo's writes relies on the deferral
  (parents are always written first).
"""

import importlib

from django.db import migrations

# 0005's list of the booking path's functions.
plans = importlib.import_module("bookings.migrations.0005_booking_function_plans")

TABLES = (
    "bookings_reservation",
    "bookings_reservationevent",
    "bookings_reservationseat",
    "bookings_outboxmessage",
)

# Sets the foreign keys of TABLES (:tables) that are :from to :to.
FOREIGN_KEYS = """
DO $do$
DECLARE
    fk record;
BEGIN
    FOR fk IN SELECT conname, conrelid::regclass AS tbl FROM pg_constraint
               WHERE contype = 'f' AND condeferrable = :from
                 AND conrelid::regclass::text IN (:tables)
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER CONSTRAINT %I :to', fk.tbl, fk.conname);
    END LOOP;
END
$do$;
""".replace(":tables", ", ".join(f"'{table}'" for table in TABLES))

FORWARD = "".join(
    f"ALTER FUNCTION {function} SET enable_seqscan = off;\n" for function in plans.FUNCTIONS
) + FOREIGN_KEYS.replace(":from", "true").replace(":to", "NOT DEFERRABLE")
BACKWARD = "".join(
    f"ALTER FUNCTION {function} RESET enable_seqscan;\n" for function in plans.FUNCTIONS
) + FOREIGN_KEYS.replace(":from", "false").replace(":to", "DEFERRABLE INITIALLY DEFERRED")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0007_outbox_enqueue_skips_without_recipient")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
