"""Dehydrated devices as the Devices screen and `/dehydration` tell of them:
the setting, whether the server can keep one, and the one it keeps.

A dehydrated device (MSC3814) receives room keys while none of your devices
is signed in; a new login with the recovery key reads them. The work is in
`tuichat/matrix/service/dehydrated_device.py`; these are the values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DehydrationState:
    enabled: bool  # the /dehydration setting (on unless turned off)
    supported: bool  # the server has MSC3814's endpoints
    device_id: str | None  # the dehydrated device the server keeps, if any
    key_held: bool  # this device holds the key that dehydrated devices are made with

    def line(self) -> str:
        """One line for the Devices screen (the device id is the server's
        text: draw it through `safe_line`)."""
        if not self.supported:
            return "Dehydrated device: this server cannot keep one"
        setting = "" if self.enabled else " (/dehydration is off)"
        if self.device_id:
            return (
                f"Dehydrated device: {self.device_id} — receives room keys while you are "
                f"signed out everywhere{setting}"
            )
        if not self.enabled:
            return "Dehydrated device: none (/dehydration on to keep one)"
        if not self.key_held:
            return "Dehydrated device: none — set up or enter recovery (/recover) to keep one"
        return "Dehydrated device: none yet"
