"""The booking transaction's work as database functions: one round trip while the lock is held.

- reservo_outbox_enqueue(ids, tokens, emailed): the outbox rows telling the reservations'
  current status, one statement whatever their number (bookings.notifications).
- reservo_expire_due_holds(resource, actor, emailed): expires a resource's holds past
  their expiry by the database clock, with their history and outbox rows. The caller
  holds the resource lock.
- reservo_book(...): the whole booking. Sets the transaction's lock and statement
  timeouts, locks the resource row (always the first lock) reading the settings with it,
  checks the rules in the order the service documents, expires due holds, locks the seats
  by primary key, checks availability, inserts the reservation, its seats, its history
  and its outbox rows. A refusal is returned as an outcome code with what its message
  needs, never raised, so nothing is aborted and the caller can record the answer in the
  same transaction; the counter trigger's CHECK and the seat index stay the last word.
- reservo_idempotency_claim(client, key, ...): sets the timeouts, takes the transaction's
  advisory lock on (client, key), then reads the key's record (after the lock, in a
  snapshot of its own: a duplicate that waited sees what the first request committed).

Messages, translations and the mapping of outcomes to errors stay in Python
(bookings.services.booking); the rules are here only.
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION reservo_outbox_enqueue(p_ids bigint[], p_tokens text[], p_emailed text[])
RETURNS void LANGUAGE sql AS $$
WITH changed AS (
    SELECT r.*, t.manage_token
      FROM unnest(p_ids, p_tokens) AS t(id, manage_token)
      JOIN bookings_reservation r ON r.id = t.id
), snapshot AS (
    SELECT c.id, c.api_client_id, c.customer_email, c.manage_token,
           'reservation.' || c.status AS event_type,
           c.status,
           jsonb_build_object(
               'id', c.public_id, 'reference', c.reference, 'resource', c.resource_id,
               'quantity', c.quantity,
               'seats', COALESCE((SELECT jsonb_agg(rs.seat_id ORDER BY rs.seat_id)
                                    FROM bookings_reservationseat rs
                                   WHERE rs.reservation_id = c.id), '[]'::jsonb),
               'status', c.status, 'hold_expires_at', c.hold_expires_at,
               'created_at', c.created_at, 'confirmed_at', c.confirmed_at,
               'cancelled_at', c.cancelled_at, 'expired_at', c.expired_at,
               'customer', jsonb_build_object('name', c.customer_name, 'email', c.customer_email)
           ) AS reservation,
           c.resource_id
      FROM changed c
)
INSERT INTO bookings_outboxmessage
       (event_id, reservation_id, event_type, channel, target, payload, status, attempts,
        last_error)
SELECT gen_random_uuid(), s.id, s.event_type, 'email', s.customer_email,
       jsonb_build_object(
           'reservation', s.reservation,
           'resource', jsonb_build_object('name', res.name, 'starts_at', res.starts_at,
                                          'ends_at', res.ends_at),
           'seat_labels', COALESCE((SELECT jsonb_agg(seat.label ORDER BY seat.id)
                                      FROM bookings_reservationseat rs
                                      JOIN resources_seat seat ON seat.id = rs.seat_id
                                     WHERE rs.reservation_id = s.id), '[]'::jsonb)
       ) || CASE WHEN s.manage_token IS NULL THEN '{}'::jsonb
                 ELSE jsonb_build_object('manage_token', s.manage_token) END,
       'pending', 0, ''
  FROM snapshot s
  JOIN resources_resource res ON res.id = s.resource_id
 WHERE s.customer_email <> '' AND s.status = ANY(p_emailed)
UNION ALL
SELECT gen_random_uuid(), s.id, s.event_type, 'webhook', w.id::text,
       jsonb_build_object('reservation', s.reservation), 'pending', 0, ''
  FROM snapshot s
  JOIN bookings_webhookendpoint w ON w.api_client_id = s.api_client_id
 WHERE w.active AND (cardinality(w.event_types) = 0 OR s.event_type = ANY(w.event_types))
ON CONFLICT ON CONSTRAINT outbox_once_per_event_and_target DO NOTHING
$$;

CREATE FUNCTION reservo_expire_due_holds(p_resource_id bigint, p_actor text, p_emailed text[])
RETURNS TABLE (id bigint, quantity integer) LANGUAGE plpgsql AS $$
DECLARE
    expired_ids bigint[];
    expired_quantities integer[];
BEGIN
    WITH expired AS (
        UPDATE bookings_reservation r
           SET status = 'expired', expired_at = now()
         WHERE r.resource_id = p_resource_id AND r.status = 'held'
           AND r.hold_expires_at <= clock_timestamp()
        RETURNING r.id, r.quantity
    )
    SELECT array_agg(e.id ORDER BY e.id), array_agg(e.quantity ORDER BY e.id)
      INTO expired_ids, expired_quantities
      FROM expired e;
    IF expired_ids IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO bookings_reservationevent (reservation_id, from_status, to_status, actor)
    SELECT unnest(expired_ids), 'held', 'expired', p_actor;
    PERFORM reservo_outbox_enqueue(
        expired_ids, array_fill(NULL::text, ARRAY[cardinality(expired_ids)]), p_emailed);
    RETURN QUERY SELECT * FROM unnest(expired_ids, expired_quantities);
END;
$$;

CREATE FUNCTION reservo_idempotency_claim(
    p_api_client_id bigint, p_key text, p_lock_timeout text, p_statement_timeout text
) RETURNS TABLE (method text, path text, request_hash text, response_status integer,
                 response_body text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true),
            set_config('statement_timeout', p_statement_timeout, true);
    PERFORM pg_advisory_xact_lock(
        hashtextextended('idempotency:' || p_api_client_id || ':' || p_key, 0));
    RETURN QUERY
        SELECT i.method::text, i.path::text, i.request_hash::text, i.response_status::integer,
               i.response_body #>> '{}'  -- the stored text, in its first key order
          FROM bookings_idempotencyrecord i
         WHERE i.api_client_id = p_api_client_id AND i.key = p_key;
END;
$$;

CREATE FUNCTION reservo_book(
    p_resource_id bigint,
    p_quantity integer,            -- the places wanted (the number of seats when seated)
    p_seat_ids bigint[],           -- NULL for a quantity booking
    p_hold boolean,
    p_references text[],           -- candidate references, tried in order
    p_customer_name text,
    p_customer_email text,
    p_api_client_id bigint,
    p_manage_token text,
    p_manage_token_hash text,
    p_actor text,
    p_bound_by_maintenance boolean,
    p_emailed text[],
    p_settings_defaults jsonb,     -- stand-ins should the settings row be missing
    p_lock_timeout text,
    p_statement_timeout text
) RETURNS TABLE (
    outcome text,                  -- booked, not_found, maintenance, not_bookable,
                                   -- wrong_kind, limit_exceeded, unknown_seats,
                                   -- seats_taken, sold_out, reference_taken
    expired integer,               -- due holds expired on the way (their rows are written)
    resource_name text,
    maintenance_message text,
    max_places integer,
    available integer,
    seat_ids bigint[],
    seat_labels text[],
    reservation_id bigint,
    public_id uuid,
    reference text,
    status text,
    hold_expires_at timestamptz,
    created_at timestamptz,
    confirmed_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    res record;
    freed integer;
    candidate text;
    found_seats bigint[];
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true),
            set_config('statement_timeout', p_statement_timeout, true);
    expired := 0;

    SELECT r.id, r.name, r.kind, r.state, r.capacity, r.held, r.confirmed, r.max_per_booking,
           statement_timestamp() AS db_now,
           COALESCE(s.maintenance_mode, (p_settings_defaults->>'maintenance_mode')::boolean)
               AS maintenance_mode,
           COALESCE(s.maintenance_message, p_settings_defaults->>'maintenance_message')
               AS maintenance_message,
           COALESCE(s.hold_ttl_seconds, (p_settings_defaults->>'hold_ttl_seconds')::integer)
               AS hold_ttl_seconds,
           COALESCE(s.default_max_per_booking,
                    (p_settings_defaults->>'default_max_per_booking')::integer)
               AS default_max_per_booking
      INTO res
      FROM resources_resource r
      LEFT JOIN settings_app_systemsettings s ON s.id = 1
     WHERE r.id = p_resource_id
       FOR UPDATE OF r;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    resource_name := res.name;
    IF p_bound_by_maintenance AND res.maintenance_mode THEN
        outcome := 'maintenance';
        maintenance_message := res.maintenance_message;
        RETURN NEXT;
        RETURN;
    END IF;
    IF res.state <> 'open' THEN
        outcome := 'not_bookable';
        RETURN NEXT;
        RETURN;
    END IF;
    IF (p_seat_ids IS NOT NULL) <> (res.kind = 'seated') THEN
        outcome := 'wrong_kind';
        RETURN NEXT;
        RETURN;
    END IF;
    max_places := COALESCE(NULLIF(res.max_per_booking, 0), res.default_max_per_booking);
    IF p_quantity > max_places THEN
        outcome := 'limit_exceeded';
        RETURN NEXT;
        RETURN;
    END IF;

    SELECT count(*), COALESCE(sum(e.quantity), 0) INTO expired, freed
      FROM reservo_expire_due_holds(p_resource_id, p_actor, p_emailed) e;
    available := res.capacity - (res.held - freed) - res.confirmed;

    IF p_seat_ids IS NOT NULL THEN
        SELECT COALESCE(array_agg(locked.id), '{}') INTO found_seats
          FROM (SELECT seat.id FROM resources_seat seat
                 WHERE seat.resource_id = p_resource_id AND seat.id = ANY(p_seat_ids)
                 ORDER BY seat.id
                   FOR UPDATE) locked;
        IF cardinality(found_seats) < cardinality(p_seat_ids) THEN
            outcome := 'unknown_seats';
            SELECT array_agg(wanted ORDER BY wanted) INTO seat_ids
              FROM unnest(p_seat_ids) wanted WHERE wanted <> ALL(found_seats);
            RETURN NEXT;
            RETURN;
        END IF;
        SELECT array_agg(seat.id ORDER BY seat.id), array_agg(seat.label ORDER BY seat.id)
          INTO seat_ids, seat_labels
          FROM bookings_reservationseat link
          JOIN resources_seat seat ON seat.id = link.seat_id
         WHERE link.seat_id = ANY(p_seat_ids) AND link.active;
        IF seat_ids IS NOT NULL THEN
            outcome := 'seats_taken';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF p_quantity > available THEN
        outcome := 'sold_out';
        RETURN NEXT;
        RETURN;
    END IF;

    FOREACH candidate IN ARRAY p_references LOOP
        INSERT INTO bookings_reservation AS r
               (public_id, reference, resource_id, quantity, status, hold_expires_at,
                created_at, confirmed_at, customer_name, customer_email, api_client_id,
                manage_token_hash)
        VALUES (gen_random_uuid(), candidate, p_resource_id, p_quantity,
                CASE WHEN p_hold THEN 'held' ELSE 'confirmed' END,
                CASE WHEN p_hold THEN res.db_now + make_interval(secs => res.hold_ttl_seconds) END,
                res.db_now, CASE WHEN p_hold THEN NULL ELSE res.db_now END,
                p_customer_name, p_customer_email, p_api_client_id, p_manage_token_hash)
        ON CONFLICT ON CONSTRAINT reservation_reference_unique DO NOTHING
        RETURNING r.id, r.public_id, r.reference, r.status, r.hold_expires_at, r.created_at,
                  r.confirmed_at
             INTO reservation_id, public_id, reference, status, hold_expires_at, created_at,
                  confirmed_at;
        EXIT WHEN reservation_id IS NOT NULL;
    END LOOP;
    IF reservation_id IS NULL THEN
        outcome := 'reference_taken';
        RETURN NEXT;
        RETURN;
    END IF;

    IF p_seat_ids IS NOT NULL THEN
        INSERT INTO bookings_reservationseat (reservation_id, seat_id, resource_id, active)
        SELECT reservation_id, wanted, p_resource_id, true FROM unnest(p_seat_ids) wanted;
    END IF;
    INSERT INTO bookings_reservationevent (reservation_id, from_status, to_status, actor)
    VALUES (reservation_id, '', status, p_actor);
    PERFORM reservo_outbox_enqueue(ARRAY[reservation_id], ARRAY[p_manage_token], p_emailed);
    outcome := 'booked';
    available := available - p_quantity;
    RETURN NEXT;
END;
$$;
"""

BACKWARD = """
DROP FUNCTION reservo_book(bigint, integer, bigint[], boolean, text[], text, text, bigint, text,
                           text, text, boolean, text[], jsonb, text, text);
DROP FUNCTION reservo_idempotency_claim(bigint, text, text, text);
DROP FUNCTION reservo_expire_due_holds(bigint, text, text[]);
DROP FUNCTION reservo_outbox_enqueue(bigint[], text[], text[]);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0003_outbox_delivery_log"),
        ("resources", "0001_initial"),
        ("settings_app", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
