"""The staff seat plan of a seated resource, reached from its admin page: who holds or
booked each seat, blocking and releasing seats, and the printable seating list.

Reads come from `resources.selectors.seat_plan` (PostgreSQL, never the cache); blocks are
made with `reservation_book(block=True)` and released with `seats_unblock`.
"""

from __future__ import annotations

import csv
from itertools import groupby
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings.services import Actor, reservation_book
from bookings.services.blocks import seats_unblock
from reservo.errors import ReservoError
from reservo.spreadsheets import csv_cell
from resources.models import Resource, ResourceKind
from resources.selectors import (
    SEAT_AVAILABLE,
    SEAT_BLOCKED,
    SEAT_BOOKED,
    SEAT_CHECKED_IN,
    SEAT_HELD,
    SeatPlan,
    availability_of,
    seat_plan,
)

SEAT_STATUS_LABELS = {
    SEAT_AVAILABLE: _("Available"),
    SEAT_HELD: _("Held"),
    SEAT_BLOCKED: _("Blocked"),
    SEAT_BOOKED: _("Booked"),
    SEAT_CHECKED_IN: _("Checked in"),
}
BLOCK, UNBLOCK = "block", "unblock"
# The printable list's orders.
BY_SEAT, BY_NAME = "seat", "name"


class SeatActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(BLOCK, _("Block")), (UNBLOCK, _("Release"))])
    seats = forms.TypedMultipleChoiceField(
        coerce=int,
        error_messages={
            "required": _("Choose at least one seat."),
            "invalid_choice": _("One of these seats is not on this plan."),
        },
    )
    note = forms.CharField(label=_("Reason (optional)"), max_length=500, required=False)

    def __init__(self, *args: Any, plan: SeatPlan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["seats"].choices = [(seat["id"], seat["label"]) for seat in plan.seats]  # type: ignore[attr-defined]


def _labelled(plan: SeatPlan) -> SeatPlan:
    """The plan with what the pages show: each status's words, each holder's summary."""
    for holder in plan.holders:
        holder["status_label"] = SEAT_STATUS_LABELS[holder["status"]]
        holder["summary"] = " · ".join(
            part
            for part in (
                holder["reference"],
                holder["name"] or holder["note"],
                ngettext("%(count)d place", "%(count)d places", holder["quantity"])
                % {"count": holder["quantity"]},
                str(holder["status_label"]),
            )
            if part
        )
    for seat in plan.seats:
        seat["status_label"] = SEAT_STATUS_LABELS[seat["status"]]
    return plan


def _seat_rows(seats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"row": row, "seats": list(row_seats)}
        for row, row_seats in groupby(seats, key=lambda seat: seat["row"])
    ]


def _labels(plan: SeatPlan, seat_ids: list[int]) -> str:
    wanted = set(seat_ids)
    return ", ".join(seat["label"] for seat in plan.seats if seat["id"] in wanted)


class SeatPlanAdminMixin:
    """The seat plan pages of `ResourceAdmin` (its `get_urls` routes them)."""

    admin_site: admin.AdminSite
    opts: Any

    def _plan_or_404(self, request: HttpRequest, object_id: str) -> SeatPlan:
        try:
            resource_id = int(object_id)
        except ValueError:
            raise Http404 from None
        plan = seat_plan(resource_id)
        if plan is None or plan.resource.kind != ResourceKind.SEATED:
            raise Http404
        # Names and contacts of customers: for staff who may see reservations.
        if not (
            self.has_view_permission(request, plan.resource)  # type: ignore[attr-defined]
            and request.user.has_perm("bookings.view_reservation")
        ):
            raise PermissionDenied
        return _labelled(plan)

    def seat_plan_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self._plan_or_404(request, object_id)
        if request.method == "POST":
            return self._seat_action(request, plan)
        resource = plan.resource
        counts = {status: 0 for status in SEAT_STATUS_LABELS}
        for seat in plan.seats:
            counts[seat["status"]] += 1
        user = request.user
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": resource,
            "title": gettext("Seat plan: %(name)s") % {"name": resource.name},
            "resource": resource,
            "plan": plan,
            "seat_rows": _seat_rows(plan.seats),
            "statuses": [
                {"status": status, "label": label, "count": counts[status]}
                for status, label in SEAT_STATUS_LABELS.items()
            ],
            "availability": availability_of(resource),
            "form": SeatActionForm(plan=plan),
            "may_block": user.has_perm("bookings.add_reservation"),
            "may_unblock": user.has_perm("bookings.change_reservation"),
        }
        return TemplateResponse(request, "admin/resources/resource/seat_plan.html", context)

    def _seat_action(self, request: HttpRequest, plan: SeatPlan) -> HttpResponse:
        form = SeatActionForm(request.POST, plan=plan)
        action = request.POST.get("action")
        needed = "bookings.change_reservation" if action == UNBLOCK else "bookings.add_reservation"
        if not request.user.has_perm(needed):
            raise PermissionDenied
        back = HttpResponseRedirect(
            reverse("admin:resources_resource_seat_plan", args=[plan.resource.pk])
        )
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    self.message_user(request, error, messages.ERROR)  # type: ignore[attr-defined]
            return back
        seat_ids: list[int] = form.cleaned_data["seats"]
        try:
            if form.cleaned_data["action"] == BLOCK:
                text = self._block(request, plan, seat_ids, form.cleaned_data["note"])
            else:
                text = self._unblock(request, plan, seat_ids)
        except ReservoError as exc:
            taken = exc.extras.get("seats")
            detail = exc.detail
            if taken and exc.code == "seats_unavailable":
                detail = gettext("Seats already taken: %(labels)s.") % {
                    "labels": _labels(plan, taken)
                }
            self.message_user(  # type: ignore[attr-defined]
                request, detail + " " + gettext("Nothing was changed."), messages.ERROR
            )
            return back
        self.message_user(request, text, messages.SUCCESS)  # type: ignore[attr-defined]
        return back

    def _block(self, request: HttpRequest, plan: SeatPlan, seat_ids: list[int], note: str) -> str:
        booking = reservation_book(
            resource_id=plan.resource.pk,
            actor=Actor.staff(request.user),
            seat_ids=seat_ids,
            block=True,
            note=note,
        )
        return ngettext(
            "Seat %(labels)s blocked (%(reference)s).",
            "Seats %(labels)s blocked (%(reference)s).",
            len(seat_ids),
        ) % {"labels": _labels(plan, seat_ids), "reference": booking.reservation.reference}

    def _unblock(self, request: HttpRequest, plan: SeatPlan, seat_ids: list[int]) -> str:
        done = seats_unblock(
            resource_id=plan.resource.pk, seat_ids=seat_ids, actor=Actor.staff(request.user)
        )
        text = ngettext(
            "Seat %(labels)s released.", "Seats %(labels)s released.", len(done.seat_labels)
        ) % {"labels": ", ".join(done.seat_labels)}
        for block in done.reblocked:
            text += " " + ngettext(
                "The other seat of its block stays blocked (%(reference)s).",
                "The other seats of its block stay blocked (%(reference)s).",
                block.quantity,
            ) % {"reference": block.reference}
        return text

    def seat_list_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The seating list to print: every seat in order, or each booking by name."""
        plan = self._plan_or_404(request, object_id)
        order = BY_NAME if request.GET.get("order") == BY_NAME else BY_SEAT
        holders = sorted(
            plan.holders,
            key=lambda holder: (
                holder["status"] == SEAT_BLOCKED,
                (holder["name"] or "").casefold(),
                holder["reference"],
            ),
        )
        resource: Resource = plan.resource
        if request.GET.get("format") == "csv":
            return _seat_list_csv(resource, plan, holders, order)
        context = {
            "resource": resource,
            "order": order,
            "seat_rows": _seat_rows(plan.seats),
            "holders": holders,
            "title": gettext("Seating list: %(name)s") % {"name": resource.name},
            "plan_url": reverse("admin:resources_resource_seat_plan", args=[resource.pk]),
            "list_url": reverse("admin:resources_resource_seat_list", args=[resource.pk]),
        }
        return TemplateResponse(request, "admin/resources/resource/seat_list.html", context)


def _seat_list_csv(
    resource: Resource, plan: SeatPlan, holders: list[dict[str, Any]], order: str
) -> HttpResponse:
    """The seating list for a spreadsheet: one line per seat, by seat or by name."""
    seats = plan.seats
    if order == BY_NAME:
        position = {holder["id"]: index for index, holder in enumerate(holders)}
        seats = [seat for seat in seats if seat["holder"] is not None]
        seats.sort(key=lambda seat: position[seat["holder"]["id"]])
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="seating-{resource.slug}-{order}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "seat",
            "row",
            "number",
            "status",
            "reference",
            "name",
            "email",
            "phone",
            "note",
            "checked_in_at",
        ]
    )
    for seat in seats:
        holder = seat["holder"] or {}
        writer.writerow(
            csv_cell(value)
            for value in (
                seat["label"],
                seat["row"],
                seat["number"],
                seat["status"],
                holder.get("reference"),
                holder.get("name"),
                holder.get("email"),
                holder.get("phone"),
                holder.get("note"),
                holder.get("checked_in_at"),
            )
        )
    return response
