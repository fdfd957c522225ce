-- One booking transaction, statement for statement as bookings.services.reservation_book
-- sends it (captured with Django's CaptureQueriesContext), replayed by pgbench against
-- PostgreSQL alone: the database's own limit for the hot resource. Variables given with
-- -D: rid (the hot resource), api_client (the benchmark's API client id). The values the
-- service computes in Python (public id, reference, token hash) are computed here in SQL;
-- the manage token in the outbox statement is a fixed one of the same length.
-- tests/bench checks that these statements still follow the service's.
BEGIN;
SELECT set_config('lock_timeout', '2000ms', true), set_config('statement_timeout', '5000ms', true);
SELECT r.*,
       statement_timestamp() AS db_now,
       COALESCE(s.maintenance_mode, false) AS maintenance_mode,
       COALESCE(s.maintenance_message, '') AS maintenance_message,
       COALESCE(s.hold_ttl_seconds, 600) AS hold_ttl_seconds,
       COALESCE(s.default_max_per_booking, 10) AS default_max_per_booking
  FROM resources_resource r
  LEFT JOIN settings_app_systemsettings s ON s.id = 1
 WHERE r.id = :rid
   FOR UPDATE OF r;
UPDATE bookings_reservation SET status = 'expired', expired_at = now() WHERE resource_id = :rid AND status = 'held' AND hold_expires_at <= clock_timestamp() RETURNING id, quantity;
INSERT INTO "bookings_reservation" ("public_id", "reference", "resource_id", "quantity", "status", "hold_expires_at", "created_at", "confirmed_at", "cancelled_at", "expired_at", "customer_name", "customer_email", "api_client_id", "manage_token_hash") VALUES (gen_random_uuid(), 'RSV-' || upper(substr(md5(random()::text), 1, 12)), :rid, 1, 'confirmed', NULL, statement_timestamp(), statement_timestamp(), NULL, NULL, '', '', :api_client, encode(sha256(random()::text::bytea), 'hex')) RETURNING "bookings_reservation"."id" AS "reservation_id", "bookings_reservation"."created_at" \gset
INSERT INTO "bookings_reservationevent" ("reservation_id", "from_status", "to_status", "actor", "occurred_at") VALUES (:reservation_id, '', 'confirmed', 'api:bench', DEFAULT) RETURNING "bookings_reservationevent"."id", "bookings_reservationevent"."occurred_at";
WITH changed AS (
    SELECT r.*, t.manage_token
      FROM unnest('{:reservation_id}'::int8[]::bigint[], '{R1a0-d2shMEeMINVzeloOpqnzW22Mxk2}'::text[]) AS t(id, manage_token)
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
 WHERE s.customer_email <> '' AND s.status = ANY('{held,confirmed,cancelled,expired}'::text[])
UNION ALL
SELECT gen_random_uuid(), s.id, s.event_type, 'webhook', w.id::text,
       jsonb_build_object('reservation', s.reservation), 'pending', 0, ''
  FROM snapshot s
  JOIN bookings_webhookendpoint w ON w.api_client_id = s.api_client_id
 WHERE w.active AND (cardinality(w.event_types) = 0 OR s.event_type = ANY(w.event_types))
ON CONFLICT ON CONSTRAINT outbox_once_per_event_and_target DO NOTHING;
COMMIT;
