"""The back office: Reservo's admin site, with a dashboard on its index and the models
grouped by what staff do (events, bookings, integrations, security, settings).

The dashboard reads through `reservo.dashboard`; its maintenance switch writes through the
settings service, like the settings page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, URLResolver, path, reverse
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override as translation_override
from django.views.decorators.http import require_POST

from bookings.models import OutboxMessage
from bookings.views.staff import may_check_in
from reservo import dashboard
from settings_app.models import SINGLETON_ID, SystemSettings
from settings_app.services import system_settings_update


@dataclass(frozen=True)
class Section:
    """A group of the index: what staff do, and the models (`app_label.model`) they do it with."""

    slug: str
    name: str | Promise
    models: tuple[str, ...]


SECTIONS = (
    Section("events", _("Events"), ("resources.resource", "resources.seat")),
    Section("bookings", _("Bookings"), ("bookings.reservation",)),
    Section(
        "integrations",
        _("Integrations"),
        (
            "bookings.apiclient",
            "bookings.webhookendpoint",
            "bookings.outboxmessage",
            "bookings.deliveryattempt",
        ),
    ),
    Section(
        "security",
        _("Security"),
        (
            "auth.user",
            "auth.group",
            "axes.accessattempt",
            "axes.accessfailurelog",
            "axes.accesslog",
        ),
    ),
    Section("settings", _("Settings"), ("settings_app.systemsettings",)),
)
# Whatever is registered and belongs to no section: listed last, so nothing is out of reach.
OTHER = Section("other", _("Other"), ())


def section_of(model_label: str) -> Section:
    """The index section that lists the model (`app_label.model`): the breadcrumbs of its
    pages lead there."""
    return next((section for section in SECTIONS if model_label in section.models), OTHER)


# Sales chart geometry (SVG user units).
CHART_SLOT, CHART_BAR, CHART_TOP, CHART_BASE, CHART_HEIGHT = 28, 18, 16, 104, 122


class MaintenanceSwitchForm(forms.Form):
    maintenance_mode = forms.TypedChoiceField(
        choices=[("on", "on"), ("off", "off")], coerce=lambda value: value == "on"
    )


class ReservoAdminSite(admin.AdminSite):
    site_header = "Reservo"
    site_title = "Reservo"
    index_title = _("Dashboard")

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path(
                "maintenance/",
                self.admin_view(require_POST(self.maintenance_switch_view)),
                name="maintenance_switch",
            ),
            path("sections/<slug:section>/", self.admin_view(self.section_view), name="section"),
            *super().get_urls(),
        ]

    # The index, grouped ----------------------------------------------------------------

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """The sections, each with its models in the order staff use them; one app's page
        (app_label) lists that app's models as Django does."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        found = {
            entry["model"]._meta.label_lower: entry
            for app in super().get_app_list(request)
            for entry in app["models"]
        }
        sections = []
        for section in SECTIONS:
            entries = [found.pop(label) for label in section.models if label in found]
            if section.slug == "bookings" and self._may_check_in(request):
                entries.append(self._check_in_entry())
            if entries:
                sections.append(self._section_dict(section, entries))
        if found:
            rest = sorted(found.values(), key=lambda entry: str(entry["name"]))
            sections.append(self._section_dict(OTHER, rest))
        return sections

    def _section_dict(self, section: Section, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": section.name,
            "app_label": section.slug,
            "app_url": reverse(
                "admin:section", kwargs={"section": section.slug}, current_app=self.name
            ),
            "has_module_perms": True,
            "models": entries,
        }

    def _may_check_in(self, request: HttpRequest) -> bool:
        # Asked for every admin page (the navigation): once per request.
        allowed = getattr(request, "reservo_may_check_in", None)
        if allowed is None:
            allowed = may_check_in(request.user)
            request.reservo_may_check_in = allowed  # type: ignore[attr-defined]
        return bool(allowed)

    def _check_in_entry(self) -> dict[str, Any]:
        """The door's page, listed with the bookings (it is not a model)."""
        return {
            "model": None,
            "name": _("Check-in at the door"),
            "object_name": "CheckIn",
            "perms": {"view": True},
            "admin_url": reverse("bookings:staff_check_in"),
            "add_url": None,
            "view_only": True,
        }

    def section_view(self, request: HttpRequest, section: str) -> HttpResponse:
        app_list = [app for app in self.get_app_list(request) if app["app_label"] == section]
        if not app_list:
            raise Http404(gettext("No such section."))
        context = {
            **self.each_context(request),
            "title": app_list[0]["name"],
            "subtitle": None,
            "app_list": app_list,
            "app_label": section,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/app_index.html", context)

    # The dashboard -----------------------------------------------------------------------

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {"dashboard": self.dashboard_context(request), **(extra_context or {})}
        return super().index(request, context)

    def dashboard_context(self, request: HttpRequest) -> dict[str, Any]:
        """The panels this user may see: events need the resources, sales and holds the
        reservations, the outbox its messages, maintenance the settings."""
        user = request.user
        now, maintenance = dashboard.clock_and_maintenance()
        board: dict[str, Any] = {"now": now}
        if user.has_perm("resources.view_resource"):
            events, total = dashboard.events_ahead(now=now)
            today = dashboard.local_date(now)
            last = today + timedelta(days=dashboard.EVENT_DAYS_AHEAD + 1)
            board["events"] = [_occupancy(event) for event in events]
            board["events_total"] = total
            # The list's own date filter, with the same bounds (midnight, site time zone).
            board["events_url"] = self._changelist_url(
                "resources_resource",
                {
                    "starts_at__gte": str(dashboard.day_start(today)),
                    "starts_at__lt": str(dashboard.day_start(last)),
                },
            )
        if user.has_perm("bookings.view_reservation"):
            board["sales"] = _sales_chart(dashboard.sales_by_day(now=now))
            board["holds"] = [
                {
                    "reservation": hold.reservation,
                    "seconds": max(int(hold.expires_in.total_seconds()), 0),
                    "url": self._change_url("bookings_reservation", hold.reservation.pk),
                }
                for hold in dashboard.holds_expiring(now=now)
            ]
            board["holds_minutes"] = int(dashboard.EXPIRING_WITHIN.total_seconds() // 60)
        if user.has_perm("bookings.view_outboxmessage"):
            health = dashboard.outbox_health()
            board["outbox"] = {
                "health": health,
                "pending_url": self._outbox_url(OutboxMessage.Status.PENDING),
                "dead_url": self._outbox_url(OutboxMessage.Status.DEAD),
            }
        if user.has_perm("settings_app.view_systemsettings") or user.has_perm(
            "settings_app.change_systemsettings"
        ):
            board["maintenance"] = maintenance
            board["may_switch_maintenance"] = user.has_perm("settings_app.change_systemsettings")
            board["settings_url"] = self._change_url("settings_app_systemsettings", SINGLETON_ID)
        return board

    def _changelist_url(self, name: str, query: dict[str, str] | None = None) -> str | None:
        try:
            url = reverse(f"admin:{name}_changelist", current_app=self.name)
        except NoReverseMatch:
            return None
        return f"{url}?{urlencode(query)}" if query else url

    def _change_url(self, name: str, pk: int) -> str | None:
        try:
            return reverse(f"admin:{name}_change", args=[pk], current_app=self.name)
        except NoReverseMatch:
            return None

    def _outbox_url(self, status: str) -> str | None:
        if not self.is_registered(OutboxMessage):
            return None
        return self._changelist_url("bookings_outboxmessage", {"status__exact": status})

    def maintenance_switch_view(self, request: HttpRequest) -> HttpResponse:
        """Maintenance on or off, from the dashboard, through the settings service (which
        records when it went on and, when it goes off, extends the holds it kept waiting)."""
        if not request.user.has_perm("settings_app.change_systemsettings"):
            raise PermissionDenied
        form = MaintenanceSwitchForm(request.POST)
        if not form.is_valid():
            messages.error(request, gettext("Choose whether maintenance mode goes on or off."))
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        turn_on: bool = form.cleaned_data["maintenance_mode"]
        maintenance = dashboard.clock_and_maintenance()[1]
        if maintenance.on == turn_on:
            messages.info(
                request,
                gettext("Maintenance mode was already on.")
                if turn_on
                else gettext("Maintenance mode was already off."),
            )
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        row = system_settings_update(maintenance_mode=turn_on)
        settings_admin = self.get_model_admin(SystemSettings)
        with translation_override(None):  # stored untranslated, as the admin's own changes
            field = str(SystemSettings._meta.get_field("maintenance_mode").verbose_name)
        settings_admin.log_change(request, row, [{"changed": {"fields": [field]}}])
        if turn_on:
            messages.warning(
                request,
                gettext(
                    "Maintenance mode is on: every booking, on the pages and in the API, is "
                    "refused within a second. Holds in progress wait for it to end."
                ),
            )
        else:
            messages.success(
                request,
                gettext(
                    "Maintenance mode is off: bookings are taken again, and the holds it kept "
                    "waiting were extended by as long as it lasted."
                ),
            )
        return HttpResponseRedirect(reverse("admin:index", current_app=self.name))


def _svg(number: float) -> str:
    """An SVG coordinate: a plain decimal whatever the language (no decimal comma)."""
    return f"{round(number, 2):g}"


def _share(part: int, whole: int) -> float:
    return 100 * part / whole if whole > 0 else 0.0


def _occupancy(event: dashboard.EventOccupancy) -> dict[str, Any]:
    """An event with its bar: confirmed, held and free as segments of its capacity (out of
    100 SVG units)."""
    segments, x = [], 0.0
    for kind, places in (
        ("confirmed", event.confirmed),
        ("held", event.held),
        ("free", event.free),
    ):
        width = _share(places, event.capacity)
        segments.append({"kind": kind, "x": _svg(x), "width": _svg(width)})
        x += width
    return {"event": event, "resource": event.resource, "segments": segments}


def _sales_chart(days: list[dashboard.DaySales]) -> dict[str, Any]:
    """Bar geometry for the sales chart: one slot per day, bar height by places sold."""
    most = max((day.places for day in days), default=0)
    bars = []
    for index, day in enumerate(days):
        height = (CHART_BASE - CHART_TOP) * day.places / most if most else 0
        bars.append(
            {
                "sales": day,
                "label": date_format(day.day, "DATE_FORMAT"),
                "day_number": day.day.day,
                "x": _svg(index * CHART_SLOT + (CHART_SLOT - CHART_BAR) / 2),
                "centre": _svg(index * CHART_SLOT + CHART_SLOT / 2),
                "y": _svg(CHART_BASE - height),
                "height": _svg(height),
                "value_y": _svg(CHART_BASE - height - 4),
            }
        )
    return {
        "days": bars,
        "width": _svg(CHART_SLOT * len(days)),
        "height": _svg(CHART_HEIGHT),
        "base": _svg(CHART_BASE),
        "bar_width": _svg(CHART_BAR),
        "label_y": _svg(CHART_BASE + 14),
        "bookings": sum(day.bookings for day in days),
        "places": sum(day.places for day in days),
    }
