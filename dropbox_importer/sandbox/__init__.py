"""A faithful local emulator of Marketo's identity and bulk lead import API."""

from dropbox_importer.sandbox.server import Sandbox
from dropbox_importer.sandbox.settings import FaultSettings, LeadField, SandboxSettings

__all__ = ["FaultSettings", "LeadField", "Sandbox", "SandboxSettings"]
