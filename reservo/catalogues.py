"""The translation catalogues: locale/<language>/LC_MESSAGES/<domain>.po, compiled to the
.mo files Django reads, with Python alone (no GNU gettext on the machine).

`python -m reservo.catalogues` compiles every catalogue under locale/ (or the .po files
named); `make install` runs it. The .mo files are built, never committed. As GNU msgfmt
does, a fuzzy or untranslated entry is left out (its English msgid is shown), and so is a
plural entry with an empty form.
"""

from __future__ import annotations

import ast
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
MO_MAGIC = 0x950412DE
CONTEXT_SEPARATOR = "\x04"


@dataclass
class Entry:
    """One message of a .po file."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    # msgstr, or msgstr[0], msgstr[1], ... of a plural message.
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def translations(self) -> list[str]:
        return [self.msgstr.get(index, "") for index in range(max(self.msgstr, default=0) + 1)]

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.translations) and not self.fuzzy


def _string(text: str, path: Path, number: int) -> str:
    """A quoted .po string ("...", with C escapes) as text."""
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError(f"{path}:{number}: expected a quoted string, not {text!r}")
    # The escapes of a .po string (\n \t \" \\) are those of a Python literal.
    value = ast.literal_eval(text)
    assert isinstance(value, str)
    return value


def parse_po(path: Path) -> list[Entry]:
    """The entries of a .po file, the header (msgid "") first; obsolete ones (#~) left out."""
    entries: list[Entry] = []
    entry = Entry()
    started = False
    keyword: tuple[str, int] | None = None

    def finish() -> None:
        nonlocal entry, started, keyword
        if started and not entry.obsolete:
            entries.append(entry)
        entry, started, keyword = Entry(), False, None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        after_msgstr = keyword is not None and keyword[0] == "msgstr"
        if not line:
            finish()
        elif line.startswith("#~"):
            entry.obsolete = started = True
        elif line.startswith("#"):
            if after_msgstr:
                finish()
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
        elif line.startswith('"'):
            if keyword is None:
                raise ValueError(f"{path}:{number}: a string continues nothing")
            text = _string(line, path, number)
            name, index = keyword
            if name == "msgstr":
                entry.msgstr[index] += text
            else:
                setattr(entry, name, (getattr(entry, name) or "") + text)
        else:
            word, _space, rest = line.partition(" ")
            if word in ("msgctxt", "msgid") and after_msgstr:
                finish()
            started = True
            text = _string(rest, path, number)
            if word in ("msgctxt", "msgid", "msgid_plural"):
                setattr(entry, word, text)
                keyword = (word, 0)
            elif word == "msgstr" or (word.startswith("msgstr[") and word.endswith("]")):
                index = int(word[7:-1]) if word != "msgstr" else 0
                entry.msgstr[index] = text
                keyword = ("msgstr", index)
            else:
                raise ValueError(f"{path}:{number}: unknown keyword {word!r}")
    finish()
    return entries


def mo_bytes(entries: list[Entry]) -> bytes:
    """A GNU .mo file of the translated entries (and the header)."""
    pairs: list[tuple[bytes, bytes]] = []
    for entry in entries:
        header = entry.msgid == "" and entry.msgctxt is None
        if not header and not entry.translated:
            continue
        key = entry.msgid
        if entry.msgid_plural is not None:
            key += "\0" + entry.msgid_plural
        if entry.msgctxt is not None:
            key = entry.msgctxt + CONTEXT_SEPARATOR + key
        pairs.append((key.encode(), "\0".join(entry.translations).encode()))
    pairs.sort()
    count = len(pairs)
    keys_start = 7 * 4
    values_start = keys_start + count * 8
    data_start = values_start + count * 8
    key_table: list[int] = []
    value_table: list[int] = []
    data = b""
    for original, _translation in pairs:
        key_table += [len(original), data_start + len(data)]
        data += original + b"\0"
    for _original, translation in pairs:
        value_table += [len(translation), data_start + len(data)]
        data += translation + b"\0"
    head = struct.pack("<7I", MO_MAGIC, 0, count, keys_start, values_start, 0, 0)
    tables = struct.pack(f"<{len(key_table)}I", *key_table) + struct.pack(
        f"<{len(value_table)}I", *value_table
    )
    return head + tables + data


def compile_po(po_path: Path) -> Path:
    """Write the .mo file beside `po_path` (atomically); returns its path."""
    mo_path = po_path.with_suffix(".mo")
    partial = mo_path.with_suffix(".mo.partial")
    partial.write_bytes(mo_bytes(parse_po(po_path)))
    partial.replace(mo_path)
    return mo_path


def main(arguments: list[str]) -> int:
    paths = [Path(argument) for argument in arguments] or sorted(
        LOCALE_DIR.glob("*/LC_MESSAGES/*.po")
    )
    for path in paths:
        compile_po(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
