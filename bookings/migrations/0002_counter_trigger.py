"""Counters maintained by PostgreSQL itself, and guards no code path can get around.

- reservo_reservation_counters: AFTER INSERT/UPDATE/DELETE on reservations, adjusts the
  resource's held/confirmed counters for every change of status, quantity or resource,
  and deactivates a reservation's seats when it stops being active. The CHECK
  resource_counters_within_capacity then refuses any change that would overbook.
- reservo_resource_counters_guard: refuses any write of held/confirmed that does not
  come from that trigger (a raw UPDATE, an admin save of stale values).
- A composite foreign key keeps every reservation seat on its own resource.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION reservo_reservation_counters() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_held integer := 0;
    old_confirmed integer := 0;
    new_held integer := 0;
    new_confirmed integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_held := CASE WHEN OLD.status = 'held' THEN OLD.quantity ELSE 0 END;
        old_confirmed := CASE WHEN OLD.status = 'confirmed' THEN OLD.quantity ELSE 0 END;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_held := CASE WHEN NEW.status = 'held' THEN NEW.quantity ELSE 0 END;
        new_confirmed := CASE WHEN NEW.status = 'confirmed' THEN NEW.quantity ELSE 0 END;
    END IF;

    IF TG_OP = 'UPDATE' AND OLD.resource_id = NEW.resource_id THEN
        IF new_held <> old_held OR new_confirmed <> old_confirmed THEN
            UPDATE resources_resource
               SET held = held + new_held - old_held,
                   confirmed = confirmed + new_confirmed - old_confirmed
             WHERE id = NEW.resource_id;
        END IF;
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') AND (old_held <> 0 OR old_confirmed <> 0) THEN
            UPDATE resources_resource
               SET held = held - old_held, confirmed = confirmed - old_confirmed
             WHERE id = OLD.resource_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND (new_held <> 0 OR new_confirmed <> 0) THEN
            UPDATE resources_resource
               SET held = held + new_held, confirmed = confirmed + new_confirmed
             WHERE id = NEW.resource_id;
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' AND OLD.status IN ('held', 'confirmed')
       AND NEW.status NOT IN ('held', 'confirmed') THEN
        UPDATE bookings_reservationseat SET active = false
         WHERE reservation_id = NEW.id AND active;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER reservo_reservation_counters
AFTER INSERT OR UPDATE OF status, quantity, resource_id OR DELETE ON bookings_reservation
FOR EACH ROW EXECUTE FUNCTION reservo_reservation_counters();

CREATE FUNCTION reservo_resource_counters_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Depth 1 is a statement from a client; the counter trigger's own UPDATE runs at depth 2.
    IF pg_trigger_depth() < 2 THEN
        IF TG_OP = 'INSERT' AND (NEW.held <> 0 OR NEW.confirmed <> 0) THEN
            RAISE EXCEPTION 'resource counters start at zero'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'resource_counters_by_trigger_only';
        END IF;
        IF TG_OP = 'UPDATE' AND (NEW.held <> OLD.held OR NEW.confirmed <> OLD.confirmed) THEN
            RAISE EXCEPTION 'resource counters are maintained by the reservation trigger'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'resource_counters_by_trigger_only';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER reservo_resource_counters_guard
BEFORE INSERT OR UPDATE OF held, confirmed ON resources_resource
FOR EACH ROW EXECUTE FUNCTION reservo_resource_counters_guard();

ALTER TABLE bookings_reservationseat
    ADD CONSTRAINT reservation_seat_on_own_resource
    FOREIGN KEY (seat_id, resource_id) REFERENCES resources_seat (id, resource_id)
    DEFERRABLE INITIALLY DEFERRED;
"""

BACKWARD = """
ALTER TABLE bookings_reservationseat DROP CONSTRAINT reservation_seat_on_own_resource;
DROP TRIGGER reservo_resource_counters_guard ON resources_resource;
DROP FUNCTION reservo_resource_counters_guard();
DROP TRIGGER reservo_reservation_counters ON bookings_reservation;
DROP FUNCTION reservo_reservation_counters();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0001_initial"),
        ("resources", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
