"""The back office's breadcrumbs: a model's pages lead to the index section listing it."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models.options import Options
from django.urls import reverse

from reservo.admin_site import section_of

register = template.Library()


@register.simple_tag(takes_context=True)
def admin_section(context: template.Context, opts: Options[Any]) -> dict[str, Any]:
    """`{% admin_section opts as section %}`: the section's `name` and `url`."""
    section = section_of(opts.label_lower)
    request = context.get("request")
    return {
        "name": section.name,
        "url": reverse(
            "admin:section",
            kwargs={"section": section.slug},
            current_app=getattr(request, "current_app", None),
        ),
    }
