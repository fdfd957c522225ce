"""Forms of the customer booking pages: choose places, give contact details, cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from bookings.names import customer_name_clean
from resources.models import ResourceKind


class HoldForm(forms.Form):
    """Places to hold: a quantity for capacity resources, seats for seated ones.

    Availability is not checked here: the booking service decides, from the database.
    """

    form_token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    quantity = forms.IntegerField(
        label=_("Number of places"),
        required=False,
        min_value=1,
        error_messages={"invalid": _("Enter a whole number of places.")},
    )
    seats = forms.TypedMultipleChoiceField(
        label=_("Seats"),
        coerce=int,
        required=False,
        error_messages={"invalid_choice": _("One of these seats does not exist any more.")},
    )

    def __init__(
        self,
        *args: Any,
        kind: str,
        limit: int,
        seat_ids: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.limit = limit
        seats_field = self.fields["seats"]
        assert isinstance(seats_field, forms.TypedMultipleChoiceField)
        seats_field.choices = [(seat_id, str(seat_id)) for seat_id in seat_ids]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.kind == ResourceKind.SEATED:
            seats = cleaned.get("seats") or []
            if not seats and "seats" not in self.errors:
                self.add_error("seats", _("Choose at least one seat."))
            elif len(seats) > self.limit:
                self.add_error("seats", self._limit_message())
            cleaned["quantity"] = None
        else:
            quantity = cleaned.get("quantity")
            if quantity is None and "quantity" not in self.errors:
                self.add_error("quantity", _("How many places would you like?"))
            elif quantity is not None and quantity > self.limit:
                self.add_error("quantity", self._limit_message())
            cleaned["seats"] = None
        return cleaned

    def _limit_message(self) -> str:
        return ngettext(
            "You can book at most %(limit)d place at a time.",
            "You can book at most %(limit)d places at a time.",
            self.limit,
        ) % {"limit": self.limit}


class CustomerForm(forms.Form):
    """Who the booking is for; the confirmation and the manage link go to this email."""

    name = forms.CharField(
        label=_("Your name"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        error_messages={"required": _("Please enter your name.")},
    )
    email = forms.EmailField(
        label=_("Email address"),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "required": _("Please enter your email address."),
            "invalid": _("Enter an email address like name@example.com."),
        },
    )

    def clean_name(self) -> str:
        name = customer_name_clean(self.cleaned_data["name"])
        if not name:
            raise forms.ValidationError(_("Please enter your name."))
        return name


class ManageTokenForm(forms.Form):
    """The private token of a manage link, carried through the cancel confirmation step."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=128)
