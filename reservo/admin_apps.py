"""The admin app with Reservo's own site (it replaces django.contrib.admin in INSTALLED_APPS,
so every `@admin.register` lands on it)."""

from django.contrib.admin.apps import AdminConfig


class ReservoAdminConfig(AdminConfig):
    default_site = "reservo.admin_site.ReservoAdminSite"
