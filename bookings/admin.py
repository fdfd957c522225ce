"""Reservations and API clients in the back office.

Nothing here changes a reservation's status or a counter by hand: reservations are
read-only (no add, no edit, no delete), and the confirm/cancel actions call the booking
services, which record each transition in the history shown on the detail page.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings import admin_staff_bookings as staff_bookings
from bookings.admin_confirmation import (
    ReasonForm,
    confirmation_page,
    confirmed_selection,
    is_confirmed,
    places_text,
)
from bookings.api_keys import api_client_create, api_client_revoke
from bookings.models import (
    ApiClient,
    ApiScope,
    Reservation,
    ReservationEvent,
    ReservationSeat,
    ReservationStatus,
)
from bookings.services import Actor, reservation_cancel, reservation_confirm
from reservo.errors import HoldExpired, InvalidState, ReservoError, ValidationFailed
from reservo.spreadsheets import Echo, csv_cell


class ReservationEventInline(admin.TabularInline):
    model = ReservationEvent
    fields = readonly_fields = (
        "occurred_at",
        "from_status_shown",
        "to_status_shown",
        "actor",
        "note",
        "reason",
    )
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["occurred_at", "id"]
    verbose_name = _("history event")
    verbose_name_plural = _("history")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReservationEvent]:
        return super().get_queryset(request).select_related("reservation")

    @admin.display(description=_("from status"))
    def from_status_shown(self, obj: ReservationEvent) -> str:
        return obj.reservation.staff_status_display(obj.from_status) if obj.from_status else "-"

    @admin.display(description=_("to status"))
    def to_status_shown(self, obj: ReservationEvent) -> str:
        return obj.reservation.staff_status_display(obj.to_status)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The history belongs to the reservation: whoever may see one sees the other.
        return request.user.has_perm("bookings.view_reservation")


def _seat_labels(reservation: Reservation) -> str:
    links = reservation.seat_links.all()
    return ", ".join(link.seat.label for link in links)


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "resource",
        "customer_name",
        "customer_email",
        "quantity",
        "seats",
        "status_shown",
        "created_at",
        "hold_expires_at",
        "confirmed_at",
        "cancelled_at",
    ]
    list_filter = ["status", "blocked", "resource", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["reference", "customer_email", "customer_name"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    list_select_related = ["resource"]
    list_per_page = 100
    inlines = [ReservationEventInline]
    actions = ["cancel_reservations", "confirm_reservations"]
    change_list_template = "admin/bookings/reservation/change_list.html"
    change_form_template = "admin/bookings/reservation/change_form.html"
    fields = readonly_fields = (
        "reference",
        "public_id",
        "resource",
        "quantity",
        "seats",
        "status",
        "customer_name",
        "customer_email",
        "api_client",
        "created_at",
        "hold_expires_at",
        "confirmed_at",
        "cancelled_at",
        "expired_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reservation]:
        seat_links = ReservationSeat.objects.select_related("seat").order_by("seat_id")
        return (
            super()
            .get_queryset(request)
            .select_related("resource", "api_client")
            .prefetch_related(Prefetch("seat_links", queryset=seat_links))
        )

    @admin.display(description=_("seats"))
    def seats(self, obj: Reservation) -> str:
        return _seat_labels(obj)

    @admin.display(description=_("status"), ordering="status")
    def status_shown(self, obj: Reservation) -> str:
        """A house block is a hold with no expiry; staff know it as blocked."""
        return obj.staff_status_display()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        """The detail page also shows what staff may edit, and the check-in at the door (the
        CSV export keeps its columns)."""
        fields = [str(field) for field in super().get_fields(request, obj)]
        at = fields.index("customer_email") + 1
        fields[at:at] = ["customer_phone", "note", "language"]
        at = fields.index("confirmed_at") + 1
        fields[at:at] = ["checked_in_at", "checked_in_by"]
        fields[fields.index("status")] = "status_shown"  # a block reads "Blocked"
        return fields

    # Bookings are made and changed through the services only.

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.cancel_reservation")

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.confirm_reservation")

    # Actions ---------------------------------------------------------------------------

    @admin.action(description=_("Cancel selected reservations"), permissions=["cancel"])
    def cancel_reservations(
        self,
        request: HttpRequest,
        queryset: QuerySet[Reservation],
        *,
        done_one: str | None = None,
    ) -> TemplateResponse | None:
        """Asks first (which reservations, places, who is emailed) and takes a reason.
        `done_one`: what to say when a single booking was cancelled (see _transition_each)."""
        form = ReasonForm(
            request.POST if is_confirmed(request) else None,
            required=True,
            help_text=gettext(
                "Recorded in each booking's history and quoted in the email to the customer."
            ),
        )
        if is_confirmed(request):
            queryset = confirmed_selection(request, self)
            if form.is_valid():
                reason = form.cleaned_data["reason"]
                self._transition_each(
                    request,
                    queryset,
                    partial(reservation_cancel, reason=reason),
                    gettext("cancelled"),
                    cancelling=True,
                    done_one=done_one,
                )
                return None
        return self._cancel_confirmation(request, queryset, form)

    def _cancel_confirmation(
        self, request: HttpRequest, queryset: QuerySet[Reservation], form: ReasonForm
    ) -> TemplateResponse:
        selected = list(queryset.order_by("id"))
        to_cancel = [r for r in selected if r.is_active and r.checked_in_at is None]
        unchanged = [
            (
                r,
                gettext("checked in: cannot be cancelled")
                if r.is_active
                else gettext("already %(status)s") % {"status": _status_label(r.status)},
            )
            for r in selected
            if r not in to_cancel
        ]
        places = sum(r.quantity for r in to_cancel)
        summary = ngettext(
            "%(count)d reservation will be cancelled, releasing %(places)s.",
            "%(count)d reservations will be cancelled, releasing %(places)s.",
            len(to_cancel),
        ) % {"count": len(to_cancel), "places": places_text(places)}
        return confirmation_page(
            request,
            self,
            "admin/bookings/reservation/confirm_cancel.html",
            action="cancel_reservations",
            title=gettext("Cancel reservations"),
            objects=selected,
            form=form,
            may_confirm=bool(to_cancel),
            submit_label=ngettext("Yes, cancel it", "Yes, cancel them", len(to_cancel)),
            summary=summary,
            to_cancel=to_cancel,
            places=places,
            emailed=[r for r in to_cancel if r.customer_email],
            not_emailed=[r for r in to_cancel if not r.customer_email],
            unchanged=unchanged,
        )

    @admin.action(description=_("Confirm selected holds"), permissions=["confirm"])
    def confirm_reservations(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        self._transition_each(request, queryset, reservation_confirm, gettext("confirmed"))

    def _transition_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Reservation],
        service: Any,
        done: str,
        *,
        cancelling: bool = False,
        done_one: str | None = None,
    ) -> None:
        """One service call (one transaction) per reservation; reports what became of each
        (when `cancelling`, a refused confirmed reservation is a checked-in one). When the
        only reservation changed and nothing else happened, `done_one` (with its
        %(reference)s) says so instead of the count."""
        actor = Actor.staff(request.user)
        changed = 0
        unchanged: Counter[str] = Counter()
        checked_in = 0
        blocks = 0
        failures: list[str] = []
        done_references: list[str] = []
        rows = queryset.order_by("id").values_list("id", "reference", "blocked")
        for reservation_id, reference, blocked in rows:
            try:
                service(reservation_id=reservation_id, actor=actor)
                changed += 1
                done_references.append(reference)
            except HoldExpired:
                unchanged[ReservationStatus.EXPIRED] += 1
            except InvalidState as exc:
                status = exc.extras.get("current_status", "")
                if cancelling and status == ReservationStatus.CONFIRMED:
                    # The only confirmed reservation a cancel refuses is a checked-in one.
                    checked_in += 1
                elif blocked and status == ReservationStatus.HELD:
                    # A house block is never confirmed (it is released instead).
                    blocks += 1
                else:
                    unchanged[status] += 1
            except ReservoError as exc:
                failures.append(f"{reference}: {exc.detail}")
        parts = [
            gettext("%(count)d %(done)s") % {"count": changed, "done": done},
            *(
                ngettext(
                    "%(count)d was already %(status)s",
                    "%(count)d were already %(status)s",
                    count,
                )
                % {"count": count, "status": _status_label(status)}
                for status, count in sorted(unchanged.items())
            ),
        ]
        if checked_in:
            parts.append(
                ngettext(
                    "%(count)d is checked in and stays booked",
                    "%(count)d are checked in and stay booked",
                    checked_in,
                )
                % {"count": checked_in}
            )
        if blocks:
            parts.append(
                ngettext(
                    "%(count)d is a house block and is never confirmed",
                    "%(count)d are house blocks and are never confirmed",
                    blocks,
                )
                % {"count": blocks}
            )
        level = (
            messages.SUCCESS
            if changed and not unchanged and not checked_in and not blocks and not failures
            else messages.WARNING
        )
        if done_one is not None and len(done_references) == 1 and level == messages.SUCCESS:
            message = done_one % {"reference": done_references[0]}
        else:
            message = ", ".join(parts) + "."
        self.message_user(request, message, level)
        for failure in failures:
            self.message_user(request, failure, messages.ERROR)

    # CSV export of the filtered list -------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_csv_view),
                name="bookings_reservation_export",
            ),
            *self._staff_booking_urls(),
        ]
        return urls + super().get_urls()

    def _staff_booking_urls(self) -> list[URLPattern]:
        """Bookings by staff: pages of their own, each calling one booking service (the
        add and change forms stay closed)."""

        def view(page: Any) -> Any:
            return self.admin_site.admin_view(partial(page, self))

        return [
            path(
                "new/",
                view(staff_bookings.choose_resource_view),
                name="bookings_reservation_new",
            ),
            path(
                "new/<int:resource_id>/",
                view(staff_bookings.new_booking_view),
                name="bookings_reservation_new_on",
            ),
            path(
                "<int:object_id>/details/",
                view(staff_bookings.edit_details_view),
                name="bookings_reservation_edit_details",
            ),
            path(
                "<int:object_id>/seats/",
                view(staff_bookings.move_seats_view),
                name="bookings_reservation_move_seats",
            ),
            path(
                "<int:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="bookings_reservation_cancel",
            ),
        ]

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponseBase:
        """The reservation page's "Cancel booking": the list action's confirmation page for
        this reservation alone (a reason is required), then back to its page."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)
        if not queryset.exists():
            raise Http404
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if request.method == "POST" and selected != [str(object_id)]:
            return HttpResponseBadRequest()
        # One booking, from its own page: named when done, not counted.
        response = self.cancel_reservations(
            request, queryset, done_one=gettext("%(reference)s was cancelled.")
        )
        if response is not None:
            return response
        return HttpResponseRedirect(reverse("admin:bookings_reservation_change", args=[object_id]))

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's rows (same filters, search and ordering), every page, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(gettext("Unknown filter."))
        rows = changelist.get_queryset(request)
        # The detail page's fields, less the internal public id, in the same order.
        header = [field for field in self.readonly_fields if field != "public_id"]

        def lines() -> Iterator[str]:
            writer = csv.writer(Echo())
            yield writer.writerow(header)
            for r in rows.iterator(chunk_size=500):
                yield writer.writerow(
                    [
                        csv_cell(value)
                        for value in (
                            r.reference,
                            r.resource.name,
                            r.quantity,
                            _seat_labels(r),
                            r.staff_status(),  # "blocked" for a house block
                            r.customer_name,
                            r.customer_email,
                            r.api_client.name if r.api_client else "",
                            *(
                                _iso(getattr(r, field))
                                for field in (
                                    "created_at",
                                    "hold_expires_at",
                                    "confirmed_at",
                                    "cancelled_at",
                                    "expired_at",
                                )
                            ),
                        )
                    ]
                )

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="reservations-{stamp}.csv"'
        return response


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def _status_label(status: str) -> str:
    try:
        return str(ReservationStatus(status).label).lower()
    except ValueError:
        return status


# API clients ---------------------------------------------------------------------------


class ApiClientCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=ApiScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("book: its own reservations; manage: everything, including resources."),
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: tuple[ApiClient, str] | None = None

    def full_clean(self) -> None:
        """Creates the client through the service once the form is valid (inside the
        admin's transaction), so that a refusal becomes a message on the form."""
        super().full_clean()
        if not self.is_bound or self.errors or self.created is not None:
            return
        try:
            self.created = api_client_create(
                name=self.cleaned_data["name"], scopes=self.cleaned_data["scopes"]
            )
        except ValidationFailed as exc:
            for field, field_errors in exc.errors.items():
                for message in field_errors:
                    self.add_error(field if field in self.fields else None, message)


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "scope_list", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_prefix"]
    ordering = ["name"]
    actions = ["revoke_keys"]
    readonly_fields = [
        "name",
        "scope_list",
        "key_prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        if obj is None:
            kwargs["form"] = ApiClientCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return ["name", "scopes"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return [] if obj is None else list(self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: reservations keep pointing at their client

    def save_model(self, request: HttpRequest, obj: ApiClient, form: Any, change: bool) -> None:
        if change:
            return  # every field is read-only once created
        client, key = form.created
        obj.pk = client.pk
        obj.key_prefix, obj.key_hash, obj.created_at = (
            client.key_prefix,
            client.key_hash,
            client.created_at,
        )
        obj.new_key = key  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """No related objects; the form was never saved itself (the service created the row)."""

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The key, once: it is rendered into this page and never stored or sent again."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("API key created"),
            "client": obj,
            "key": obj.new_key,  # type: ignore[attr-defined]
        }
        response = TemplateResponse(request, "admin/bookings/apiclient/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        revoked = already = 0
        for client in queryset.order_by("id"):
            if client.revoked_at is not None:
                already += 1
                continue
            api_client_revoke(client_id=client.pk)
            revoked += 1
        text = ngettext("%(count)d key revoked", "%(count)d keys revoked", revoked) % {
            "count": revoked
        }
        if already:
            text += ", " + ngettext(
                "%(count)d was already revoked", "%(count)d were already revoked", already
            ) % {"count": already}
        self.message_user(request, text + ".", messages.SUCCESS)
