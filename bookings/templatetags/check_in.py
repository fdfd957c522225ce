"""The check-in QR code: inline SVG on pages (no image to fetch, nothing the
Content-Security-Policy forbids), an HTML table in emails (mail clients that drop SVG and
images still draw tables)."""

from __future__ import annotations

from itertools import groupby

import segno
from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from bookings.services import check_in_code

register = template.Library()

# Medium error correction: the code still reads from a scratched phone screen or a crease.
ERROR_CORRECTION = "m"
# Pixels per module: 6 on pages (about 250 px with its quiet zone), 4 in emails.
PAGE_SCALE = 6
EMAIL_MODULE_PX = 4
QUIET_ZONE_MODULES = 4


def _qr(code: str) -> segno.QRCode:
    return segno.make(code, error=ERROR_CORRECTION, micro=False)


def _title(reference: str) -> str:
    return _("Check-in code for %(reference)s") % {"reference": reference}


@register.simple_tag
def check_in_qr(reference: str) -> SafeString:
    """The reservation's check-in code as an inline SVG QR code, dark on white whatever
    the page's colours, named for screen readers by its title."""
    svg = _qr(check_in_code(reference)).svg_inline(
        scale=PAGE_SCALE, dark="#000", light="#fff", title=_title(reference), svgclass="qr-code"
    )
    return SafeString(svg)  # segno's markup; the only text in it, the title, is escaped


@register.simple_tag
def check_in_qr_email(reference: str) -> SafeString:
    """The reservation's check-in code as a QR code drawn with table cells, one table per
    row of modules and one cell per run of same-coloured modules, on a white quiet zone."""
    px = EMAIL_MODULE_PX
    rows = []
    for row in _qr(check_in_code(reference)).matrix_iter(border=0):
        cells = format_html_join(
            "",
            '<td width="{}" height="{}"{}></td>',
            (
                (len(list(run)) * px, px, SafeString(' bgcolor="#000000"') if dark else "")
                for dark, run in groupby(bool(module) for module in row)
            ),
        )
        rows.append(
            format_html(
                '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
                'style="border-collapse: collapse; font-size: 0; line-height: 0;">'
                "<tr>{}</tr></table>",
                cells,
            )
        )
    return format_html(
        '<table role="presentation" cellpadding="{}" cellspacing="0" border="0" '
        'bgcolor="#ffffff" style="background: #ffffff;" aria-label="{}">'
        "<tr><td>{}</td></tr></table>",
        QUIET_ZONE_MODULES * px,
        _title(reference),
        SafeString("".join(rows)),
    )
