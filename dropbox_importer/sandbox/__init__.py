"""A faithful local emulator of Marketo's identity and bulk import API (leads, program members,
custom objects)."""

from dropbox_importer.sandbox.catalog import Channel, CustomObjectType, ObjectCatalog, Program
from dropbox_importer.sandbox.server import Sandbox
from dropbox_importer.sandbox.settings import (
    FaultSettings,
    LeadField,
    OtherIntegrationSettings,
    SandboxSettings,
)

__all__ = [
    "Channel",
    "CustomObjectType",
    "FaultSettings",
    "LeadField",
    "ObjectCatalog",
    "OtherIntegrationSettings",
    "Program",
    "Sandbox",
    "SandboxSettings",
]
