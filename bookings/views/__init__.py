"""Customer booking pages: browse, hold, check out, confirm, manage and cancel.

Views are thin: the booking services decide everything about places and time (from the
database); these views turn their answers into pages. A checkout is tied to the browser
that made the hold: the hold's secret manage token lives in that browser's session, and a
reservation is shown only to whoever presents a token whose hash matches.
"""

from bookings.views.browse import home, resource_detail
from bookings.views.holds import checkout, confirmed, release_hold
from bookings.views.live import live_resource, live_resources
from bookings.views.self_service import cancel, manage

__all__ = [
    "cancel",
    "checkout",
    "confirmed",
    "home",
    "live_resource",
    "live_resources",
    "manage",
    "release_hold",
    "resource_detail",
]
