"""A database migrated before the booking rules moved to Python still has their functions,
and the idempotency records' check for outcomes: both go. On a new database this changes
nothing, and going back changes nothing either (the schema never needs them again)."""

from django.db import migrations

FORWARD = """
DROP FUNCTION IF EXISTS reservo_book(bigint, integer, bigint[], boolean, text[], text, text,
                                     bigint, text, text, text, boolean, text[], jsonb, text,
                                     text);
DROP FUNCTION IF EXISTS reservo_transition(bigint, text, text, text, text, text, text, text,
                                           boolean, text[], jsonb, text, text);
DROP FUNCTION IF EXISTS reservo_idempotency_claim(bigint, text, text, text);
DROP FUNCTION IF EXISTS reservo_idempotency_claim_first(bigint, text);
DROP FUNCTION IF EXISTS reservo_expire_due_holds(bigint, text, text[]);
DROP FUNCTION IF EXISTS reservo_outbox_enqueue(bigint[], text[], text[]);
ALTER TABLE bookings_idempotencyrecord DROP CONSTRAINT IF EXISTS idempotency_answer_or_outcome;
"""


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_squashed_0012_transition_function")]

    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
