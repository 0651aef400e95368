"""The lead schema: Marketo's standard fields and the checks a value of each type must pass."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

from dropbox_importer.sandbox.settings import LeadField

STANDARD_FIELDS: tuple[LeadField, ...] = (
    LeadField("id", "integer", None, "Id", read_only=True),
    LeadField("email", "email", 255, "Email Address"),
    LeadField("salutation", "string", 255, "Salutation"),
    LeadField("firstName", "string", 255, "First Name"),
    LeadField("middleName", "string", 255, "Middle Name"),
    LeadField("lastName", "string", 255, "Last Name"),
    LeadField("title", "string", 255, "Job Title"),
    LeadField("company", "string", 255, "Company Name"),
    LeadField("department", "string", 255, "Department"),
    LeadField("phone", "phone", 255, "Phone Number"),
    LeadField("mobilePhone", "phone", 255, "Mobile Phone Number"),
    LeadField("fax", "phone", 255, "Fax Number"),
    LeadField("address", "text", 65535, "Address"),
    LeadField("city", "string", 255, "City"),
    LeadField("state", "string", 255, "State"),
    LeadField("country", "string", 255, "Country"),
    LeadField("postalCode", "string", 255, "Postal Code"),
    LeadField("website", "url", 255, "Website"),
    LeadField("industry", "string", 255, "Industry"),
    LeadField("numberOfEmployees", "integer", None, "Num Employees"),
    LeadField("annualRevenue", "currency", None, "Annual Revenue"),
    LeadField("rating", "string", 255, "Lead Rating"),
    LeadField("leadSource", "string", 255, "Lead Source"),
    LeadField("leadStatus", "string", 255, "Lead Status"),
    LeadField("leadScore", "integer", None, "Lead Score"),
    LeadField("dateOfBirth", "date", None, "Date of Birth"),
    # Consent and suppression fields, as Marketo's describe names them.
    LeadField("unsubscribed", "boolean", None, "Unsubscribed"),
    LeadField("unsubscribedReason", "text", 65535, "Unsubscribed Reason"),
    LeadField("marketingSuspended", "boolean", None, "Marketing Suspended"),
    LeadField("doNotCall", "boolean", None, "Do Not Call"),
    LeadField("doNotCallReason", "string", 512, "Do Not Call Reason"),
    LeadField("blackListed", "boolean", None, "Blacklisted"),
    LeadField("blackListedCause", "string", 255, "Blacklisted Cause"),
    LeadField("emailInvalid", "boolean", None, "Email Invalid"),
    LeadField("emailInvalidCause", "string", 255, "Email Invalid Cause"),
    LeadField("externalId", "string", 255, "External Id"),
    LeadField("createdAt", "datetime", None, "Created At", read_only=True),
    LeadField("updatedAt", "datetime", None, "Updated At", read_only=True),
)

# Deliberately simple: one @, no spaces, a dot in the domain; what Marketo rejects in practice.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
INTEGER = re.compile(r"[+-]?\d{1,18}")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class InvalidValueError(ValueError):
    """A cell's value does not fit its field; the message is the row's failure reason."""


def _email(value: str) -> object:
    if not EMAIL.fullmatch(value):
        raise InvalidValueError(f"Invalid email address '{value}'")
    return value


def _ascii_email(value: str) -> object:
    # Strict: Marketo fails an address with any character outside ASCII, an accented local
    # part as much as an internationalised domain not written in its xn-- form.
    if not value.isascii():
        raise InvalidValueError(f"Invalid email address '{value}'")
    return _email(value)


def _typed(field: LeadField) -> Callable[[str], object]:
    def check(value: str) -> object:
        try:
            if field.data_type == "integer":
                if not INTEGER.fullmatch(value.strip()):
                    raise ValueError(value)
                return int(value)
            if field.data_type in ("float", "currency"):
                return float(value)
            if field.data_type == "boolean":
                return BOOLEANS[value.strip().lower()]
            if field.data_type == "date":
                return date.fromisoformat(value.strip()).isoformat()
            return datetime.fromisoformat(value.strip()).isoformat()
        except (ValueError, KeyError):
            raise InvalidValueError(
                f"Invalid value '{value}' for field '{field.name}' of type {field.data_type}"
            ) from None

    return check


def converter(field: LeadField, ascii_email: bool = False) -> Callable[[str], object]:
    """The function that checks and converts one non-empty cell of this field.

    `ascii_email` (strict) refuses email addresses with characters outside ASCII.
    """
    if field.data_type == "email":
        return _ascii_email if ascii_email else _email
    if field.data_type in ("integer", "float", "currency", "boolean", "date", "datetime"):
        return _typed(field)
    return str  # text: the caller skips the call when it sees `str`


def describe(fields: tuple[LeadField, ...]) -> list[dict[str, object]]:
    """The `result` of `GET /rest/v1/leads/describe.json` for these fields."""
    out: list[dict[str, object]] = []
    for number, field in enumerate(fields, start=1):
        item: dict[str, object] = {
            "id": number,
            "displayName": field.display_name or field.name,
            "dataType": field.data_type,
            "rest": {"name": field.name, "readOnly": field.read_only},
            "soap": {"name": field.name[:1].upper() + field.name[1:], "readOnly": field.read_only},
        }
        if field.length is not None:
            item["length"] = field.length
        out.append(item)
    return out
