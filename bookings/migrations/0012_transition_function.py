"""A confirmation or a cancellation as one database function: one round trip under the lock.

reservo_transition(...) sets the transaction's timeouts, finds the reservation's resource,
locks the resource row (always the first lock) reading the maintenance switch with it,
locks the reservation, and then either expires it (a hold found past its expiry, by the
database clock: its places are freed whatever the caller wanted), refuses (a state the
transition does not start from), or makes the transition with its history and outbox
rows. A refusal is returned as an outcome code, never raised, so the caller can record
the answer in the same statement (bookings.api.idempotency.OutcomeRecord) and commit.
It returns the reservation as it then is, which is all an answer shows.

Before this, the same work took seven round trips while the resource row was locked
(the reservation's lock, its update, the history row, the outbox call, a savepoint's
release, the seats read for the answer, then the record with the COMMIT), and a booking
rush on that resource waited behind each of them.

Messages and the mapping of outcomes to errors stay in Python
(bookings.services.transitions), as for reservo_book.
"""

from django.db import migrations

SIGNATURE = (
    "reservo_transition(bigint, text, text, text, text, text, text, text, boolean, text[],"
    " jsonb, text, text)"
)

FORWARD = r"""
CREATE FUNCTION reservo_transition(
    p_reservation_id bigint,
    p_to_status text,              -- confirmed (from held) or cancelled (from held, confirmed)
    p_customer_name text,          -- NULL: unchanged
    p_customer_email text,         -- NULL: unchanged
    p_manage_token text,           -- goes into the email row when its hash is the reservation's
    p_manage_token_hash text,
    p_actor text,
    p_expiry_actor text,           -- who expires a hold found past its expiry
    p_bound_by_maintenance boolean,
    p_emailed text[],
    p_settings_defaults jsonb,     -- stand-ins should the settings row be missing
    p_lock_timeout text,
    p_statement_timeout text
) RETURNS TABLE (
    outcome text,                  -- changed, not_found, maintenance, invalid_state,
                                   -- hold_expired
    maintenance_message text,
    reservation_id bigint,
    public_id uuid,
    reference text,
    resource_id bigint,
    quantity integer,
    seat_ids bigint[],
    status text,
    hold_expires_at timestamptz,
    created_at timestamptz,
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    expired_at timestamptz,
    customer_name text,
    customer_email text
) LANGUAGE plpgsql
  -- As every function on the booking path (0005, 0008, 0010).
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off
AS $$
DECLARE
    found_resource_id bigint;
    maintenance boolean;
    current record;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true),
            set_config('statement_timeout', p_statement_timeout, true);

    SELECT r.resource_id INTO found_resource_id
      FROM bookings_reservation r WHERE r.id = p_reservation_id;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT COALESCE(s.maintenance_mode, (p_settings_defaults->>'maintenance_mode')::boolean),
           COALESCE(s.maintenance_message, p_settings_defaults->>'maintenance_message')
      INTO maintenance, maintenance_message
      FROM resources_resource res
      LEFT JOIN settings_app_systemsettings s ON s.id = 1
     WHERE res.id = found_resource_id
       FOR UPDATE OF res;
    IF p_bound_by_maintenance AND maintenance THEN
        outcome := 'maintenance';
        RETURN NEXT;
        RETURN;
    END IF;
    maintenance_message := NULL;

    SELECT r.status, r.manage_token_hash,
           r.status = 'held' AND r.hold_expires_at <= clock_timestamp() AS past
      INTO current
      FROM bookings_reservation r WHERE r.id = p_reservation_id
       FOR UPDATE;
    IF current.past THEN
        UPDATE bookings_reservation r
           SET status = 'expired', expired_at = statement_timestamp()
         WHERE r.id = p_reservation_id;
        INSERT INTO bookings_reservationevent (reservation_id, from_status, to_status, actor)
        VALUES (p_reservation_id, 'held', 'expired', p_expiry_actor);
        PERFORM reservo_outbox_enqueue(ARRAY[p_reservation_id], ARRAY[NULL::text], p_emailed);
        outcome := 'hold_expired';
    ELSIF current.status <> 'held'
          AND NOT (p_to_status = 'cancelled' AND current.status = 'confirmed') THEN
        outcome := 'invalid_state';
    ELSE
        UPDATE bookings_reservation r
           SET status = p_to_status,
               confirmed_at = CASE WHEN p_to_status = 'confirmed' THEN statement_timestamp()
                                   ELSE r.confirmed_at END,
               cancelled_at = CASE WHEN p_to_status = 'cancelled' THEN statement_timestamp()
                                   ELSE r.cancelled_at END,
               customer_name = COALESCE(p_customer_name, r.customer_name),
               customer_email = COALESCE(p_customer_email, r.customer_email)
         WHERE r.id = p_reservation_id;
        INSERT INTO bookings_reservationevent (reservation_id, from_status, to_status, actor)
        VALUES (p_reservation_id, current.status, p_to_status, p_actor);
        PERFORM reservo_outbox_enqueue(
            ARRAY[p_reservation_id],
            ARRAY[CASE WHEN p_manage_token_hash = current.manage_token_hash
                       THEN p_manage_token END],
            p_emailed);
        outcome := 'changed';
    END IF;

    SELECT r.id, r.public_id, r.reference, r.resource_id, r.quantity,
           COALESCE((SELECT array_agg(link.seat_id ORDER BY link.seat_id)
                       FROM bookings_reservationseat link
                      WHERE link.reservation_id = r.id), '{}'),
           r.status, r.hold_expires_at, r.created_at, r.confirmed_at, r.cancelled_at,
           r.expired_at, r.customer_name, r.customer_email
      INTO reservation_id, public_id, reference, resource_id, quantity, seat_ids, status,
           hold_expires_at, created_at, confirmed_at, cancelled_at, expired_at,
           customer_name, customer_email
      FROM bookings_reservation r WHERE r.id = p_reservation_id;
    RETURN NEXT;
END;
$$;
"""

BACKWARD = f"DROP FUNCTION {SIGNATURE};"


class Migration(migrations.Migration):
    dependencies = [("bookings", "0011_idempotency_outcome_records")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
