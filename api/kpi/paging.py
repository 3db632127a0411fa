"""Pages of a long JSON answer, and CSV cells a spreadsheet will not run (docs/http.md)."""

from __future__ import annotations

import base64
import binascii

from api.query_values import invalid

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def encode_cursor(offset: int) -> str:
    """Opaque to the client: where the next page starts."""
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.startswith("o") and text[1:].isdigit() and len(text) < 12):
        raise invalid("cursor", "is not a cursor this API gave (the `next` of a page)")
    return int(text[1:])


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would read as a formula, quoted with a leading `'`
    (OWASP CSV injection); numbers and other cells as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
