"""Django's PostgreSQL backend, with two round trips fewer (see base)."""
