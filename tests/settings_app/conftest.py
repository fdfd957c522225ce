"""The admin tests' staff users, for the settings tests."""

from tests.admin.conftest import (
    clerk,
    clerk_client,
    superuser,
    superuser_client,
)

__all__ = [
    "clerk",
    "clerk_client",
    "superuser",
    "superuser_client",
]
