"""Creates (once) the demo superuser that `make run` prints, on the embedded database only."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from reservo import embedded


class Command(BaseCommand):
    help = (
        "Create the demo staff superuser if it does not exist. Refused unless the database "
        "is the embedded one: its password is published."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("password")

    def handle(self, *args: Any, **options: Any) -> None:
        if not embedded.is_embedded_database(connection.settings_dict):
            raise CommandError(
                "Refused: the demo staff user, whose password is published, is only created "
                "on the embedded database, and DATABASE_URL names another. Create staff "
                "users with `manage.py createsuperuser`."
            )
        user_model = get_user_model()
        if not user_model.objects.filter(username=options["username"]).exists():
            user_model.objects.create_superuser(
                username=options["username"], email="", password=options["password"]
            )
