-- A plain booking transaction, replayed by pgbench: the database's own figure for the hot
-- resource. Lock the resource row, insert a confirmed reservation (the counter trigger
-- updates the resource's counters, and the capacity CHECK guards them), commit. No history,
-- outbox or idempotency row. Variable given with -D: rid (the resource, of a capacity that
-- a run does not exhaust). The reference is unique by construction: "PG-" and the
-- transaction's id in hex. The manage token's hash is a fixed value of the column's length.
BEGIN;
SELECT id, capacity, held, confirmed FROM resources_resource WHERE id = :rid FOR UPDATE;
INSERT INTO bookings_reservation (
    public_id, reference, resource_id, quantity, status, confirmed_at,
    customer_name, customer_email, manage_token_hash)
VALUES (
    gen_random_uuid(), 'PG-' || upper(to_hex(txid_current())), :rid, 1, 'confirmed', now(),
    '', '', '5f0c8a9b1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccd');
COMMIT;
