"""Admin login protection: repeated failures lock out a username from an address (django-axes)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check for every login made over HTTP.

    A credential check without a request (a management command, a shell, the test
    client's `login`) cannot be a brute-force attempt from the network, so it is let
    through to the next backend instead of being refused.
    """

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)
        return None
