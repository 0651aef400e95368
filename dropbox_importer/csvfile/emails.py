"""E-mail addresses Marketo refuses before a row is ever sent: anything beyond ASCII.

Marketo fails a row whose email holds a character outside ASCII (MARKETO.md, "Learnt since"):
an accented local part, or an internationalised domain not written in its `xn--` form. Such a
row fails locally, with a reason the partner can act on; the rest of the file is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

# The name of the email column, compared as header names are (trimmed, any case).
EMAIL_COLUMN = "email"


def email_column(header: Sequence[str]) -> int | None:
    """The index of the header's email column, or None when it has none."""
    names = [name.strip().lower() for name in header]
    return names.index(EMAIL_COLUMN) if EMAIL_COLUMN in names else None


def non_ascii_email_reason(value: str) -> str:
    """Why this address fails, and what to write instead when that can be worked out."""
    address = value.strip()
    odd = "".join(dict.fromkeys(c for c in address if not c.isascii()))
    reason = f"email '{address}' has characters Marketo refuses ({odd})"
    local, at, domain = address.rpartition("@")
    if at and local.isascii() and not domain.isascii():
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = ""
        if ascii_domain:
            return f"{reason}: write the domain in its ASCII form, {local}@{ascii_domain}"
    return f"{reason}: use an address written in ASCII letters, digits and punctuation only"
