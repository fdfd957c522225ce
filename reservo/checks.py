"""Deploy checks (`manage.py check --deploy`): what production must not run without.

The settings already refuse to start in production without SECRET_KEY, RESERVO_PUBLIC_URL
or an email server; these checks also catch a local run's stand-ins (a generated key, an
http address, emails printed on the console) in a configuration meant for production.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def production_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if settings.RESERVO_GENERATED_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is not set: this process signs with a key generated on this "
                "machine (.reservo/secret_key).",
                hint="Set SECRET_KEY to a long random string, the same on every instance.",
                id="reservo.E001",
            )
        )
    if not settings.RESERVO_PUBLIC_URL.startswith("https://"):
        errors.append(
            Error(
                f"RESERVO_PUBLIC_URL is {settings.RESERVO_PUBLIC_URL!r}: links in emails "
                "would not use HTTPS.",
                hint="Set RESERVO_PUBLIC_URL to the https address customers use.",
                id="reservo.E002",
            )
        )
    if settings.EMAIL_BACKEND == settings.CONSOLE_EMAIL_BACKEND:
        errors.append(
            Error(
                "Emails are printed on the console, manage links included.",
                hint="Set RESERVO_EMAIL_URL to your mail server (dummymail:// sends none).",
                id="reservo.E003",
            )
        )
    return errors
