"""Slash commands typed in the composer: the table and parsing.

Parsing is plain Python so it can be tested without a terminal; the App
carries the parsed command out through the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("join", "/join #alias:server | !id:server", "join a room and switch to it"),
        CommandSpec("leave", "/leave", "leave the current room"),
        CommandSpec("dm", "/dm @user:server [@user2 …]", "open an encrypted direct message"),
        CommandSpec("invite", "/invite @user:server", "invite someone to this room"),
        CommandSpec("me", "/me TEXT", "send an action (emote)"),
        CommandSpec("plain", "/plain TEXT", "send TEXT as it is, without Markdown"),
        CommandSpec("upload", "/upload PATH", "send a file (Tab completes the path)"),
        CommandSpec(
            "download", "/download", "save the selected (or the latest) file to your downloads"
        ),
        CommandSpec(
            "membership",
            "/membership show|condense|hide",
            "how joins, leaves and name changes appear in the timeline",
        ),
        CommandSpec("members", "/members", "list this room's members (Enter: their devices)"),
        CommandSpec("devices", "/devices [@user:server]", "show devices, fingerprints and trust"),
        CommandSpec(
            "verify", "/verify @user:server [DEVICE]", "verify a device by comparing emoji"
        ),
        CommandSpec(
            "verifications",
            "/verifications",
            "open a verification request that did not open by itself",
        ),
        CommandSpec(
            "verify-device", "/verify-device @user:server DEVICE", "mark a device verified"
        ),
        CommandSpec("blacklist", "/blacklist @user:server DEVICE", "never send keys to a device"),
        CommandSpec(
            "verified-only",
            "/verified-only on|off [global]",
            "send keys only to verified devices (this room, or by default)",
        ),
        CommandSpec("recover", "/recover", "restore encrypted history (or set up recovery)"),
        CommandSpec(
            "signed-only",
            "/signed-only verified|all|off",
            "keys only to devices their owners cross-signed (for verified people, all, off)",
        ),
        CommandSpec("retry", "/retry", "send this room's failed messages again"),
        CommandSpec(
            "export-keys",
            "/export-keys [--force] FILE",
            "save your room keys, passphrase-protected",
        ),
        CommandSpec("import-keys", "/import-keys FILE", "load room keys from an export file"),
        CommandSpec("help", "/help", "every command and key (also F1)"),
    )
}

# Aliases are #name:server. Room ids are !opaque:server, or just !opaque
# since room version 12 (MSC4291) dropped the server part.
_ROOM_REF = re.compile(r"^(#[^:\s]+:[A-Za-z0-9.\-\[\]:]+|![^\s:]+(:[A-Za-z0-9.\-\[\]:]+)?)$")


_USER_ID = re.compile(r"^@[^:\s]+:[A-Za-z0-9.\-\[\]:]+$")


@dataclass(frozen=True)
class Message:
    """Plain text to send (including text that starts with `//`)."""

    text: str


@dataclass(frozen=True)
class Command:
    name: str
    argument: str


@dataclass(frozen=True)
class CommandError:
    message: str


Parsed = Message | Command | CommandError


def parse(text: str) -> Parsed:
    """Turn composer text into a message to send, a command, or an error."""
    if not text.startswith("/"):
        return Message(text)
    if text.startswith("//"):
        return Message(text[1:])
    name, _, argument = text[1:].partition(" ")
    name = name.strip().lower()
    argument = argument.strip()
    spec = COMMANDS.get(name)
    if spec is None:
        return CommandError(f"Unknown command /{name}. Type /help for the list.")
    if name == "join":
        if not _ROOM_REF.match(argument):
            return CommandError(f"Usage: {spec.usage}")
    elif name in ("dm", "invite"):
        users = argument.split()
        if not users or any(not _USER_ID.match(u) for u in users):
            return CommandError(f"Usage: {spec.usage} (user ids look like @name:server)")
        if name == "invite" and len(users) != 1:
            return CommandError(f"Usage: {spec.usage}")
    elif name in ("devices", "verify", "verify-device", "blacklist"):
        words = argument.split()
        needed = {"devices": (0, 1), "verify": (1, 2), "verify-device": (2, 2), "blacklist": (2, 2)}
        low, high = needed[name]
        if not low <= len(words) <= high or (words and not _USER_ID.match(words[0])):
            return CommandError(f"Usage: {spec.usage}")
    elif name == "signed-only":
        if argument not in ("verified", "all", "off"):
            return CommandError(f"Usage: {spec.usage}")
    elif name == "verified-only":
        words = argument.split()
        if not words or words[0] not in ("on", "off") or words[1:] not in ([], ["global"]):
            return CommandError(f"Usage: {spec.usage}")
    elif name == "membership":
        if argument not in ("show", "condense", "hide"):
            return CommandError(f"Usage: {spec.usage}")
    elif name in ("me", "plain", "upload", "export-keys", "import-keys"):
        if not argument:
            return CommandError(f"Usage: {spec.usage}")
    elif argument:
        return CommandError(f"Usage: {spec.usage}")
    return Command(name, argument)
