"""What a failed notification delivery raises, shared by every kind of target."""

from __future__ import annotations


class DeliveryError(Exception):
    """One delivery attempt failed; `final` means trying again cannot help."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final
