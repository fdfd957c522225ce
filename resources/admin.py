"""Resources in the back office: list with live counters, create/edit through the services,
seat generation, open/close/cancel actions and the counter reconciliation page.

The admin never writes a counter: creates and edits go through `resources.services`, and
the event cancellation cancels each reservation through `bookings.services`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings.admin_confirmation import (
    ReasonForm,
    confirmation_page,
    confirmed_selection,
    is_confirmed,
    places_text,
)
from bookings.models import ACTIVE_STATUSES, Reservation, ReservationStatus
from bookings.services import Actor
from bookings.services.transitions import resource_cancel
from reservo.errors import ReservoError, ValidationFailed
from resources.models import Resource, ResourceKind, ResourceState
from resources.seat_plan_admin import SeatPlanAdminMixin
from resources.selectors import (
    availability_of,
    resources_counter_drift,
    resources_with_availability,
)
from resources.services import (
    UPDATABLE_FIELDS,
    SeatSpec,
    resource_add_seats,
    resource_close_sales,
    resource_create,
    resource_update,
    seat_specs_from_labels,
    seat_specs_from_rows,
)


def _with_reason(text: str, reason: str) -> str:
    return f"{text} {gettext('Reason:')} {reason}" if reason else text


def _close_reason_form(request: HttpRequest) -> ReasonForm:
    return ReasonForm(
        request.POST if is_confirmed(request) else None,
        required=False,
        help_text=gettext("Optional. Recorded in the resource's history; nobody is emailed."),
    )


def _split(text: str) -> list[str]:
    return [part for part in (p.strip() for p in text.replace("\n", ",").split(",")) if part]


class ResourceForm(forms.ModelForm):
    """Once Django's own validation passes, the write happens here, inside the admin's
    transaction, so that whatever the service refuses (capacity below booked, bad seats,
    a lock wait past its bound) becomes a message on the form instead of an error page."""

    slug = forms.SlugField(
        label=_("slug"),
        max_length=200,
        required=False,
        help_text=_("Leave empty to derive it from the name."),
    )
    capacity = forms.IntegerField(
        label=_("capacity"),
        min_value=1,
        required=False,
        help_text=_("Places. A seated resource's capacity is its number of seats."),
    )
    max_per_booking = forms.IntegerField(
        label=_("max per booking"),
        min_value=1,
        required=False,
        help_text=_("Empty: the system default."),
    )
    seat_rows = forms.CharField(
        label=_("seat rows"),
        required=False,
        help_text=_("Seated: row names, comma separated (A, B, C), with seats per row."),
    )
    seats_per_row = forms.IntegerField(label=_("seats per row"), min_value=1, required=False)
    seat_labels = forms.CharField(
        label=_("seat labels"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Or a list of seat labels (A1, A2, B1...), comma or line separated."),
    )

    class Meta:
        model = Resource
        fields = ["name", "slug", "kind", *UPDATABLE_FIELDS[1:]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved: Resource | None = None

    def seat_specs(self) -> list[SeatSpec]:
        rows = _split(self.cleaned_data.get("seat_rows") or "")
        per_row = self.cleaned_data.get("seats_per_row")
        labels = _split(self.cleaned_data.get("seat_labels") or "")
        if labels and (rows or per_row):
            raise ValidationFailed(
                {"seat_labels": [gettext("Give rows and seats per row, or labels, not both.")]}
            )
        if labels:
            return seat_specs_from_labels(labels)
        if rows or per_row:
            if not rows or not per_row:
                raise ValidationFailed(
                    {"seats_per_row": [gettext("Give both the rows and the seats per row.")]}
                )
            return seat_specs_from_rows(rows, per_row)
        return []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", gettext("The end must be after the start."))
        return cleaned

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound or self.errors or self.saved is not None:
            return
        try:
            self.saved = self._write()
        except ValidationFailed as exc:
            self._add_errors(exc.errors)
        except ReservoError as exc:
            field = "capacity" if exc.code == "capacity_below_booked" else None
            self.add_error(field, exc.detail)

    def _add_errors(self, errors: dict[str, list[str]]) -> None:
        for field, field_errors in errors.items():
            target = field if field in self.fields else None
            if field == "seats":
                target = "seat_labels" if "seat_labels" in self.fields else None
            for message in field_errors:
                self.add_error(target, message)

    def _write(self) -> Resource:
        data = self.cleaned_data
        seats = self.seat_specs()
        if self.instance.pk is None:
            return resource_create(
                name=data["name"],
                slug=data.get("slug") or None,
                kind=data["kind"],
                capacity=data.get("capacity"),
                seats=seats,
                state=data["state"],
                starts_at=data.get("starts_at"),
                ends_at=data.get("ends_at"),
                max_per_booking=data.get("max_per_booking"),
                sales_open_at=data.get("sales_open_at"),
                sales_close_at=data.get("sales_close_at"),
                description=data.get("description") or "",
                venue=data.get("venue") or "",
            )
        changes = {
            field: data.get(field) for field in self.changed_data if field in UPDATABLE_FIELDS
        }
        if "capacity" in changes and changes["capacity"] is None:
            raise ValidationFailed({"capacity": [gettext("Capacity must be at least 1.")]})
        for field in ("description", "venue"):
            if field in changes and changes[field] is None:
                changes[field] = ""
        resource = self.instance
        if changes:
            resource = resource_update(resource_id=self.instance.pk, **changes)
        if seats:
            resource = resource_add_seats(resource_id=self.instance.pk, seats=seats)
        return resource


class AvailabilityFilter(admin.SimpleListFilter):
    title = _("availability")
    parameter_name = "availability"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("available", _("Places left")), ("full", _("Full"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        left = F("capacity") - F("held") + F("expired_held") - F("confirmed")
        if self.value() == "available":
            return queryset.alias(left=left).filter(left__gt=0)
        if self.value() == "full":
            return queryset.alias(left=left).filter(left__lte=0)
        return queryset


@admin.register(Resource)
class ResourceAdmin(SeatPlanAdminMixin, admin.ModelAdmin):
    form = ResourceForm
    list_display = [
        "name",
        "kind",
        "state",
        "starts_at",
        "sales_close_at",
        "capacity",
        "held_now",
        "confirmed",
        "checked_in",
        "available_now",
    ]
    list_filter = ["state", "kind", AvailabilityFilter, ("starts_at", admin.DateFieldListFilter)]
    search_fields = ["name", "slug", "venue"]
    date_hierarchy = "starts_at"
    ordering = ["starts_at", "id"]
    actions = ["open_resources", "close_resources", "close_sales_now", "cancel_events"]
    change_list_template = "admin/resources/resource/change_list.html"
    readonly_counter_fields = ["held_now", "confirmed", "checked_in", "available_now", "seat_count"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Resource]:
        # Checked-in reservations are confirmed ones: the partial index on active
        # reservations by resource finds them.
        checked_in = (
            Reservation.objects.filter(
                resource=OuterRef("pk"),
                status=ReservationStatus.CONFIRMED,
                checked_in_at__isnull=False,
            )
            .order_by()
            .values("resource")
            .annotate(places=Sum("quantity"))
            .values("places")
        )
        return resources_with_availability().annotate(
            checked_in_places=Coalesce(Subquery(checked_in), 0)
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        seat_fields = ["seat_rows", "seats_per_row", "seat_labels"]
        fieldsets: list[Any] = [
            (None, {"fields": ["name", "slug", "kind"]}),
            (
                _("Booking"),
                {"fields": ["state", "capacity", "max_per_booking", "starts_at", "ends_at"]},
            ),
            (
                _("Sales window"),
                {
                    "fields": ["sales_open_at", "sales_close_at"],
                    "description": _(
                        "Empty: on sale from now on, until the event starts. Outside the "
                        "window customers and API clients cannot book or hold."
                    ),
                },
            ),
            (_("Details"), {"fields": ["venue", "description"]}),
        ]
        may_add_seats = obj is None or (
            obj.kind == ResourceKind.SEATED and self.has_change_permission(request, obj)
        )
        if may_add_seats:
            title = _("Seats") if obj is None else _("Add seats")
            fieldsets.append((title, {"fields": seat_fields}))
        if obj is not None:
            fieldsets.append((_("Counters (read-only)"), {"fields": self.readonly_counter_fields}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["slug", "kind", *self.readonly_counter_fields]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new resource starts as a draft, out of customers' sight, until staff open its
        sales (the "Open for booking" action). The API's default stays open."""
        return {"state": ResourceState.DRAFT, **super().get_changeform_initial_data(request)}

    @admin.display(description=_("held"))
    def held_now(self, obj: Resource) -> int:
        return availability_of(obj)["held"]

    @admin.display(description=_("checked in"), ordering="checked_in_places")
    def checked_in(self, obj: Resource) -> int:
        """Places whose booking has checked in."""
        return int(getattr(obj, "checked_in_places", 0))

    @admin.display(description=_("available"))
    def available_now(self, obj: Resource) -> int:
        return availability_of(obj)["available"]

    @admin.display(description=_("seats"))
    def seat_count(self, obj: Resource) -> int:
        return obj.seats.count()

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        assert form.saved is not None, "ResourceForm.full_clean saves through the services"
        return form.saved

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing to do: the form's validation already saved through the services."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    # Actions ---------------------------------------------------------------------------

    def _set_state(
        self, request: HttpRequest, queryset: QuerySet[Resource], state: str, reason: str = ""
    ) -> None:
        changed, already, refused = 0, 0, []
        for resource in queryset.order_by("id"):
            if resource.state == state:
                already += 1
                continue
            try:
                resource_update(resource_id=resource.pk, state=state)
                changed += 1
            except ReservoError as exc:
                refused.append(f"{resource}: {exc.detail}")
                continue
            if state == ResourceState.CLOSED:
                closed = gettext("Closed for booking.")
                self.log_change(request, resource, _with_reason(closed, reason))
        label = str(ResourceState(state).label).lower()
        self.message_user(
            request,
            ngettext(
                "%(count)d resource set to %(state)s.",
                "%(count)d resources set to %(state)s.",
                changed,
            )
            % {"count": changed, "state": label},
            messages.SUCCESS,
        )
        if already:
            self.message_user(
                request,
                ngettext(
                    "%(count)d resource was already %(state)s.",
                    "%(count)d resources were already %(state)s.",
                    already,
                )
                % {"count": already, "state": label},
                messages.WARNING,
            )
        for line in refused:
            self.message_user(request, line, messages.ERROR)

    @admin.action(description=_("Open for booking"), permissions=["change"])
    def open_resources(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        self._set_state(request, queryset, ResourceState.OPEN)

    @admin.action(description=_("Close for booking"), permissions=["change"])
    def close_resources(
        self, request: HttpRequest, queryset: QuerySet[Resource]
    ) -> TemplateResponse | None:
        """Stops sales: asks first; the reason, optional, goes into the resource's history."""
        form = _close_reason_form(request)
        if is_confirmed(request) and form.is_valid():
            self._set_state(
                request,
                confirmed_selection(request, self),
                ResourceState.CLOSED,
                form.cleaned_data["reason"],
            )
            return None
        return self._close_confirmation(
            request,
            confirmed_selection(request, self) if is_confirmed(request) else queryset,
            form,
            action="close_resources",
            title=gettext("Close for booking"),
            effect=gettext(
                "Closed: customers and API clients can no longer book or hold places, "
                "and the event's page says it is not bookable."
            ),
        )

    @admin.action(description=_("Close sales now"), permissions=["change"])
    def close_sales_now(
        self, request: HttpRequest, queryset: QuerySet[Resource]
    ) -> TemplateResponse | None:
        """Asks first; the reason, optional, goes into the resource's history."""
        form = _close_reason_form(request)
        if not (is_confirmed(request) and form.is_valid()):
            return self._close_confirmation(
                request,
                confirmed_selection(request, self) if is_confirmed(request) else queryset,
                form,
                action="close_sales_now",
                title=gettext("Close sales now"),
                effect=gettext(
                    "The sales window ends now: customers and API clients can no longer "
                    "book or hold places."
                ),
            )
        reason = form.cleaned_data["reason"]
        closed = already = 0
        for resource in confirmed_selection(request, self):
            try:
                closed_now = resource_close_sales(resource_id=resource.pk)
            except ReservoError as exc:
                self.message_user(request, f"{resource}: {exc.detail}", messages.ERROR)
                continue
            if not closed_now:
                already += 1
                continue
            closed += 1
            self.log_change(request, resource, _with_reason(gettext("Sales closed now."), reason))
        self.message_user(
            request,
            ngettext(
                "Sales closed now for %(count)d resource.",
                "Sales closed now for %(count)d resources.",
                closed,
            )
            % {"count": closed},
            messages.SUCCESS,
        )
        if already:
            self.message_user(
                request,
                ngettext(
                    "Sales of %(count)d resource had closed already; they keep their closing time.",
                    "Sales of %(count)d resources had closed already; they keep their "
                    "closing time.",
                    already,
                )
                % {"count": already},
                messages.WARNING,
            )
        return None

    def _close_confirmation(
        self,
        request: HttpRequest,
        queryset: QuerySet[Resource],
        form: ReasonForm,
        *,
        action: str,
        title: str,
        effect: str,
    ) -> TemplateResponse:
        resources = list(queryset.order_by("starts_at", "id"))
        return confirmation_page(
            request,
            self,
            "admin/resources/resource/confirm_close.html",
            action=action,
            title=title,
            objects=resources,
            form=form,
            may_confirm=bool(resources),
            submit_label=gettext("Yes, close them"),
            effect=effect,
            resources=[(resource, availability_of(resource)) for resource in resources],
        )

    @admin.action(
        description=_("Cancel event (cancels every active reservation)"), permissions=["change"]
    )
    def cancel_events(
        self, request: HttpRequest, queryset: QuerySet[Resource]
    ) -> TemplateResponse | None:
        """Asks first (what is cancelled, who is emailed) and takes a reason, which goes
        into each reservation's history, each customer's email and the resource's history."""
        form = ReasonForm(
            request.POST if is_confirmed(request) else None,
            required=True,
            help_text=gettext(
                "Recorded in each booking's history and quoted in the email to the customers."
            ),
        )
        if is_confirmed(request):
            queryset = confirmed_selection(request, self)
            if form.is_valid():
                for resource in queryset:
                    self._cancel_event(request, resource, form.cleaned_data["reason"])
                return None
        return self._cancel_events_confirmation(request, queryset, form)

    def _cancel_event(self, request: HttpRequest, resource: Resource, reason: str) -> None:
        try:
            result = resource_cancel(
                resource_id=resource.pk, actor=Actor.staff(request.user), reason=reason
            )
        except ReservoError as exc:
            self.message_user(request, f"{resource}: {exc.detail}", messages.ERROR)
            return
        count = len(result.cancelled)
        if result.was_cancelled:
            text = ngettext(
                "%(name)s was already cancelled: %(count)d reservation cancelled",
                "%(name)s was already cancelled: %(count)d reservations cancelled",
                count,
            )
        else:
            text = ngettext(
                "%(name)s cancelled: %(count)d reservation cancelled",
                "%(name)s cancelled: %(count)d reservations cancelled",
                count,
            )
        text %= {"name": resource, "count": count}
        if result.checked_in:
            text += ", " + ngettext(
                "%(count)d checked in stays booked",
                "%(count)d checked in stay booked",
                len(result.checked_in),
            ) % {"count": len(result.checked_in)}
        self.message_user(
            request, text + ".", messages.WARNING if result.was_cancelled else messages.SUCCESS
        )
        if not result.was_cancelled or count:
            summary = ngettext(
                "Event cancelled: %(count)d reservation cancelled.",
                "Event cancelled: %(count)d reservations cancelled.",
                count,
            ) % {"count": count}
            self.log_change(request, resource, _with_reason(summary, reason))

    def _cancel_events_confirmation(
        self, request: HttpRequest, queryset: QuerySet[Resource], form: ReasonForm
    ) -> TemplateResponse:
        resources = list(queryset.order_by("starts_at", "id"))
        active: dict[int, list[Reservation]] = {resource.pk: [] for resource in resources}
        for reservation in Reservation.objects.filter(
            resource__in=resources, status__in=ACTIVE_STATUSES
        ).order_by("id"):
            active[reservation.resource_id].append(reservation)
        events = []
        for resource in resources:
            to_cancel = [r for r in active[resource.pk] if r.checked_in_at is None]
            places = sum(r.quantity for r in to_cancel)
            events.append(
                {
                    "resource": resource,
                    "to_cancel": to_cancel,
                    "places": places,
                    "summary": ngettext(
                        "%(count)d reservation will be cancelled, releasing %(places)s.",
                        "%(count)d reservations will be cancelled, releasing %(places)s.",
                        len(to_cancel),
                    )
                    % {"count": len(to_cancel), "places": places_text(places)},
                    "emailed": [r for r in to_cancel if r.customer_email],
                    "not_emailed": [r for r in to_cancel if not r.customer_email],
                    "checked_in": [r for r in active[resource.pk] if r.checked_in_at is not None],
                }
            )
        return confirmation_page(
            request,
            self,
            "admin/resources/resource/confirm_cancel_events.html",
            action="cancel_events",
            title=gettext("Cancel events"),
            objects=resources,
            form=form,
            may_confirm=bool(resources),
            submit_label=gettext("Yes, cancel the events"),
            events=events,
        )

    # Reconciliation ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="resources_resource_reconcile",
            ),
            path(
                "<path:object_id>/seat-plan/",
                self.admin_site.admin_view(self.seat_plan_view),
                name="resources_resource_seat_plan",
            ),
            path(
                "<path:object_id>/seat-plan/list/",
                self.admin_site.admin_view(self.seat_list_view),
                name="resources_resource_seat_list",
            ),
        ]
        return urls + super().get_urls()

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """Counters against a recount of active reservations, per resource (expected: none)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        drift = resources_counter_drift()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Counter reconciliation"),
            "drift": drift,
            "checked": Resource.objects.count(),
        }
        return TemplateResponse(request, "admin/resources/resource/reconcile.html", context)
