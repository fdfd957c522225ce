"""The booking functions never JIT-compile their statements.

0008 runs them with `enable_seqscan = off`. Before PostgreSQL 18, a plan node so disabled
adds `disable_cost` (10^10) to the plan's cost, so every statement in these functions was
priced far above `jit_above_cost` (100,000), and a server built with JIT (the packages of
Debian, Ubuntu and most distributions; not the embedded server) compiled them again on
every call. On PostgreSQL 15 a booking took 130–200 ms of the database's CPU instead of
about 1 ms: the outbox guard's `EXISTS` alone spent 195 ms in JIT for a 0.3 ms index scan.
PostgreSQL 18 counts disabled nodes apart from the cost. The functions' statements all
find their rows by key or by a partial index: compiling them never pays off.
"""

import importlib

from django.db import migrations

# 0005's list of the booking path's functions, and 0009's claim.
plans = importlib.import_module("bookings.migrations.0005_booking_function_plans")
FUNCTIONS = [*plans.FUNCTIONS, "reservo_idempotency_claim_first(bigint, text)"]

FORWARD = "".join(f"ALTER FUNCTION {function} SET jit = off;\n" for function in FUNCTIONS)
BACKWARD = "".join(f"ALTER FUNCTION {function} RESET jit;\n" for function in FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0009_idempotency_claim_first")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
