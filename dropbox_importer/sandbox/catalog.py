"""What the sandbox instance defines beyond leads: channels, programs, custom object types.

Kept apart from `settings.py` so the settings gain one field (`catalog`) and these shapes stay
readable on their own. The defaults give tests and the demo something to import into: program
1001 "Partner webinar" on the Webinar channel (statuses Invited, Registered, Attended, No Show)
and the custom object `car_c` (fields vin, model, year; deduplicated on vin), which is also the
example Adobe's custom object pages use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dropbox_importer.sandbox.settings import LeadField


@dataclass(frozen=True)
class Channel:
    """A program channel: the member statuses its programs allow, in progression order."""

    id: int
    name: str
    statuses: tuple[str, ...]
    success: tuple[str, ...] = ()  # statuses that count as the program's success
    applicable_program_type: str = "event"


@dataclass(frozen=True)
class Program:
    """A program members can be imported into; its channel decides the valid statuses."""

    id: int
    name: str
    channel: str  # the channel's name, as `GET /rest/asset/v1/program/{id}.json` gives it
    type: str = "event"


@dataclass(frozen=True)
class CustomObjectType:
    """A custom object type: its fields and the fields records are deduplicated on."""

    api_name: str
    display_name: str
    fields: tuple[LeadField, ...]
    dedupe_fields: tuple[str, ...]
    plural_name: str = ""
    description: str = ""

    def field(self, name: str) -> LeadField | None:
        """The field with this API name, matched case-insensitively like an import header."""
        lowered = name.lower()
        return next((f for f in self.all_fields if f.name.lower() == lowered), None)

    @property
    def all_fields(self) -> tuple[LeadField, ...]:
        """The object's fields after the ones Marketo adds to every type (id and timestamps)."""
        return SYSTEM_OBJECT_FIELDS + self.fields


# Every custom object record has these; none of them can be written by an import.
SYSTEM_OBJECT_FIELDS: tuple[LeadField, ...] = (
    LeadField("marketoGUID", "string", 36, "Marketo GUID", read_only=True),
    LeadField("createdAt", "datetime", None, "Created At", read_only=True),
    LeadField("updatedAt", "datetime", None, "Updated At", read_only=True),
)

# Program member fields: Marketo's standard ones (read-only in an import) and two custom fields.
PROGRAM_MEMBER_FIELDS: tuple[LeadField, ...] = (
    LeadField("leadId", "integer", None, "Lead Id", read_only=True),
    LeadField("programId", "integer", None, "Program Id", read_only=True),
    LeadField("statusName", "string", 255, "Status", read_only=True),
    LeadField("membershipDate", "datetime", None, "Membership Date", read_only=True),
    LeadField("reachedSuccess", "boolean", None, "Success", read_only=True),
    LeadField("attendedMinutes", "integer", None, "Attended Minutes"),
    LeadField("registrationSource", "string", 255, "Registration Source"),
)

DEFAULT_CHANNELS: tuple[Channel, ...] = (
    Channel(1, "Webinar", ("Invited", "Registered", "Attended", "No Show"), ("Attended",)),
    Channel(2, "Content", ("Engaged",), ("Engaged",), applicable_program_type="default"),
)

DEFAULT_PROGRAMS: tuple[Program, ...] = (
    Program(1001, "Partner webinar", "Webinar"),
    Program(1002, "Partner content", "Content", type="default"),
)

DEFAULT_CUSTOM_OBJECTS: tuple[CustomObjectType, ...] = (
    CustomObjectType(
        "car_c",
        "Car",
        (
            LeadField("vin", "string", 17, "VIN"),
            LeadField("model", "string", 255, "Model"),
            LeadField("year", "integer", None, "Year"),
        ),
        dedupe_fields=("vin",),
        plural_name="Cars",
        description="A partner's vehicle records",
    ),
)


@dataclass(frozen=True)
class ObjectCatalog:
    """Channels, programs, program member fields and custom object types of one instance."""

    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    programs: tuple[Program, ...] = DEFAULT_PROGRAMS
    program_member_fields: tuple[LeadField, ...] = PROGRAM_MEMBER_FIELDS
    custom_objects: tuple[CustomObjectType, ...] = DEFAULT_CUSTOM_OBJECTS
    created_at: str = field(default="2024-01-15T09:30:00Z")

    def __post_init__(self) -> None:
        """Reject a catalog whose programs, channels or object types don't fit together."""
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        for channel in self.channels:
            if not channel.statuses or not set(channel.success) <= set(channel.statuses):
                raise ValueError(f"channel {channel.name!r}: statuses needed, success among them")
        ids = [p.id for p in self.programs]
        if len(set(ids)) != len(ids):
            raise ValueError("program ids must be unique")
        for program in self.programs:
            if program.channel not in names:
                raise ValueError(f"program {program.id}: unknown channel {program.channel!r}")
        api_names = [o.api_name for o in self.custom_objects]
        if len(set(api_names)) != len(api_names):
            raise ValueError("custom object api names must be unique")
        for obj in self.custom_objects:
            missing = [d for d in obj.dedupe_fields if obj.field(d) is None]
            if not obj.dedupe_fields or missing:
                raise ValueError(f"custom object {obj.api_name!r}: dedupe fields must be fields")

    def program(self, program_id: int) -> Program | None:
        """The program with this id, if any."""
        return next((p for p in self.programs if p.id == program_id), None)

    def channel(self, name: str) -> Channel:
        """The channel with this name (every program's channel exists, checked at creation)."""
        return next(c for c in self.channels if c.name == name)

    def custom_object(self, api_name: str) -> CustomObjectType | None:
        """The custom object type with this API name (exact, as in Marketo's paths)."""
        return next((o for o in self.custom_objects if o.api_name == api_name), None)

    def member_field(self, name: str) -> LeadField | None:
        """The program member field with this name, matched case-insensitively."""
        lowered = name.lower()
        return next((f for f in self.program_member_fields if f.name.lower() == lowered), None)
