"""One way to write dates on pages, in emails and in the admin: "Wed 9 Dec 2026, 19:00 CET",
in the site's time zone, naming it."""

DATE_FORMAT = "D j M Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "D j M Y, H:i T"
SHORT_DATE_FORMAT = "D j M Y"
SHORT_DATETIME_FORMAT = "D j M Y, H:i T"
