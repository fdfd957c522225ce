"""System settings: the singleton that staff change at run time (maintenance, hold TTL)."""

from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    name = "settings_app"
    verbose_name = "System settings"
