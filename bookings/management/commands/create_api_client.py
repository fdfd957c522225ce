"""Create an API client; its key is the only thing printed on standard output (it is never
stored), so `KEY=$(manage.py create_api_client NAME)` captures it, and a refusal leaves
standard output empty and the exit status non-zero."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bookings.api_keys import api_client_create
from reservo.errors import ValidationFailed


class Command(BaseCommand):
    help = "Create an API client with the given scopes and print its key (alone, on stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", default="book", help="Comma-separated: book, manage (default: book)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            client, key = api_client_create(
                name=options["name"], scopes=options["scopes"].split(",")
            )
        except ValidationFailed as exc:
            messages = "; ".join(m for ms in exc.errors.values() for m in ms)
            raise CommandError(messages) from exc
        self.stderr.write(
            f"Created API client {client.name!r} (id {client.pk}, scopes {','.join(client.scopes)})."
            " Its key, below, is shown once; store it now."
        )
        self.stdout.write(key)
