"""The confirmation step of the admin's destructive actions, after Django's own delete
confirmation: the action first renders a page listing what will change, whose form posts
the same action back with `post=yes`, the selected ids and staff's reason; only that
second request changes anything.

A confirmation submitted twice (a double click, the back button) changes nothing twice:
the services re-read every row under its lock and refuse what is no longer active, and
the actions report those rows as already done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

REASON_MAX_LENGTH = 1000


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
    )

    def __init__(self, *args: Any, required: bool, help_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        self.fields["reason"].help_text = help_text


def places_text(count: int) -> str:
    return ngettext("%(count)d place", "%(count)d places", count) % {"count": count}


def is_confirmed(request: HttpRequest) -> bool:
    """Whether this request is the confirmation page's form (not the change list's)."""
    return request.method == "POST" and request.POST.get("post") == "yes"


def confirmed_selection(request: HttpRequest, model_admin: admin.ModelAdmin) -> QuerySet[Any]:
    """The rows the confirmation page listed, by their ids, among those this user may see.

    Not the change list's filtered queryset: the page posts back to the filtered list, and
    a row the first submit changed may no longer match its filter (a reservation cancelled
    from `status=confirmed`), yet a second submit must still report it.
    """
    ids = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    return model_admin.get_queryset(request).filter(pk__in=ids).order_by("pk")


def confirmation_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    template: str,
    *,
    action: str,
    title: str,
    objects: Sequence[Model],
    form: ReasonForm,
    **context: Any,
) -> TemplateResponse:
    """The page asking staff to confirm `action` on `objects`, with the reason form."""
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": title,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected_ids": [obj.pk for obj in objects],
            "form": form,
            "media": model_admin.media,
            **context,
        },
    )
