"""The v1 REST API for reservations and analytics (contract: API.md)."""
