"""The idempotency claim that travels with the request's first statement.

`reservo_idempotency_claim` (0004) waits for the key's advisory lock and returns the key's
record: the request decides on what it returns, so it costs a round trip of its own before
the request's first statement. `reservo_idempotency_claim_first` decides in the database
instead, so it can go in the same query as that statement (bookings.api.idempotency): it
takes the lock only if it is free and the key has no record; otherwise it raises
SQLSTATE RV001, which ends the query before the request's statement runs, and the request
starts again with the full claim (which waits, replays, or answers "in progress").

Like the other functions of the booking path, it keeps generic plans made with index
scans (0005, 0008).
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION reservo_idempotency_claim_first(p_api_client_id bigint, p_key text)
RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    -- The same lock as reservo_idempotency_claim's (0004).
    IF NOT pg_try_advisory_xact_lock(
           hashtextextended('idempotency:' || p_api_client_id || ':' || p_key, 0))
       OR EXISTS (SELECT FROM bookings_idempotencyrecord i
                   WHERE i.api_client_id = p_api_client_id AND i.key = p_key) THEN
        RAISE EXCEPTION 'idempotency key claimed already' USING ERRCODE = 'RV001';
    END IF;
END;
$$;
"""
BACKWARD = "DROP FUNCTION reservo_idempotency_claim_first(bigint, text);"


class Migration(migrations.Migration):
    dependencies = [("bookings", "0008_booking_plans_use_indexes")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
