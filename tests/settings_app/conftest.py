"""The admin tests' staff users and static files setup, for the settings tests."""

from tests.admin.conftest import (
    _static_files_without_collectstatic,
    clerk,
    clerk_client,
    superuser,
    superuser_client,
)

__all__ = [
    "_static_files_without_collectstatic",
    "clerk",
    "clerk_client",
    "superuser",
    "superuser_client",
]
