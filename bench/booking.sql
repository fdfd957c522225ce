-- One booking transaction, statement for statement as bookings.services.reservation_book
-- sends it (captured with Django's CaptureQueriesContext), replayed by pgbench against
-- PostgreSQL alone: the database's own limit for the hot resource. Variables given with
-- -D: rid (the hot resource), api_client (the benchmark's API client id). The values the
-- service computes in Python (candidate references, manage token and its hash) are a
-- random number here, and a fixed token of the same length.
-- The service sends the BEGIN, its statement and the COMMIT together, as one query; so does
-- `\;` here. tests/bench checks that these statements still follow the service's.
\set ref random(1, 9999999999)
BEGIN ISOLATION LEVEL READ COMMITTED \; SELECT * FROM reservo_book(
    :rid, 1, NULL::bigint[], false, '{RSV-A:ref,RSV-B:ref,RSV-C:ref}'::text[], '', '', :api_client,
    'R1a0-d2shMEeMINVzeloOpqnzW22Mxk2',
    '5f0c8a9b1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccd', 'api:bench', true,
    '{held,confirmed,cancelled,expired}'::text[],
    '{"maintenance_mode": false, "maintenance_message": "", "hold_ttl_seconds": 600, "default_max_per_booking": 10}'::jsonb,
    '2000ms', '5000ms') \; COMMIT;
