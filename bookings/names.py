"""Customer names as they are stored and start the emails: no control characters (ESC,
CR, LF, ...) and no bidirectional overrides or isolates (U+202E, ...)."""

from __future__ import annotations

import re
import unicodedata

# Line and paragraph breaks of every kind become a space: "Ada\r\nBcc: x" stays readable
# as "Ada Bcc: x" instead of running together.
_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
# Embeddings and overrides (U+202A..U+202E) and isolates (U+2066..U+2069) reorder the
# text around them: "Ada\u202egnp.exe" shows as "Adaexe.png".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SPACES = re.compile(r"\s+")


def customer_name_clean(name: str) -> str:
    """`name` without control or bidi-control characters, its spaces collapsed."""
    kept = []
    for character in name:
        if character in _BREAKS:
            kept.append(" ")
        elif character in _BIDI_CONTROLS or unicodedata.category(character) == "Cc":
            continue
        else:
            kept.append(character)
    return _SPACES.sub(" ", "".join(kept)).strip()
