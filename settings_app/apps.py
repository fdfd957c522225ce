"""System settings: the singleton that staff change at run time (maintenance, hold TTL)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = _("System settings")
