"""Dates in German, as in English (reservo/formats/en) in German words: "Mi., 9. Dez. 2026, 19:00 CET"."""

DATE_FORMAT = r"D., j. N Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = r"D., j. N Y, H:i T"
SHORT_DATE_FORMAT = r"D., j. N Y"
SHORT_DATETIME_FORMAT = r"D., j. N Y, H:i T"
