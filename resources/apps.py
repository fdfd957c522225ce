"""Resources app: things that can be booked, their seats and availability."""

from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    name = "resources"
    verbose_name = "Events and resources"
