"""Pages of a long JSON answer, and CSV cells a spreadsheet will not run (docs/http.md)."""

from __future__ import annotations

import base64
import binascii

from api.query_values import invalid

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def encode_cursor(place: tuple[int, int]) -> str:
    """Opaque to the client: where the next page starts (a period, a row in it)."""
    return base64.urlsafe_b64encode(f"p{place[0]}.{place[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    bucket, _, place = text[1:].partition(".")
    if not (text.startswith("p") and bucket.isdigit() and place.isdigit() and len(text) < 24):
        raise invalid("cursor", "is not a cursor this API gave (the `next` of a page)")
    return int(bucket), int(place)


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would read as a formula, quoted with a leading `'`
    (OWASP CSV injection); numbers and other cells as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
