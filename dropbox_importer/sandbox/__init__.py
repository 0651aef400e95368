"""A faithful local emulator of Marketo's identity and bulk lead import API."""

from dropbox_importer.sandbox.server import Sandbox
from dropbox_importer.sandbox.settings import (
    FaultSettings,
    LeadField,
    OtherIntegrationSettings,
    SandboxSettings,
)

__all__ = ["FaultSettings", "LeadField", "OtherIntegrationSettings", "Sandbox", "SandboxSettings"]
