"""Slash commands typed in the composer: the table and parsing.

One table, `COMMANDS`: each command's name, usage, summary and argument
parser. Parsing is plain Python so it can be tested without a terminal; the
UI's handlers (`tuichat.ui.commands`, one per name in this table) carry a
parsed command out through the service. The Help screen and Tab completion
read the same table.

One concept seen from two sides, hence two modules of this name: this one
parses what was typed; `tuichat/ui/commands.py` carries each command out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tuichat.model.keys import DEFAULT_KEYS, key_label
from tuichat.model.search_query import QueryError, parse_query

# Aliases are #name:server. Room ids are !opaque:server, or just !opaque
# since room version 12 (MSC4291) dropped the server part.
_ROOM_REF = re.compile(r"^(#[^:\s]+:[A-Za-z0-9.\-\[\]:]+|![^\s:]+(:[A-Za-z0-9.\-\[\]:]+)?)$")


_USER_ID = re.compile(r"^@[^:\s]+:[A-Za-z0-9.\-\[\]:]+$")


class UsageError(Exception):
    """An argument that does not fit the command: told as "Usage: …",
    followed by `hint`."""

    def __init__(self, hint: str = "") -> None:
        super().__init__(hint)
        self.hint = hint


# The text after the command's name (stripped) -> its arguments, or
# UsageError.
ArgumentParser = Callable[[str], tuple[str, ...]]


def no_argument(argument: str) -> tuple[str, ...]:
    if argument:
        raise UsageError
    return ()


def text_argument(argument: str) -> tuple[str, ...]:
    """Any text, not empty (a message, a path)."""
    if not argument:
        raise UsageError
    return (argument,)


def threads_argument(argument: str) -> tuple[str, ...]:
    """Nothing (all threads), or "mine" (those you took part in)."""
    if argument not in ("", "mine"):
        raise UsageError
    return (argument,) if argument else ()


def room_argument(argument: str) -> tuple[str, ...]:
    if not _ROOM_REF.match(argument):
        raise UsageError
    return (argument,)


def user_arguments(argument: str) -> tuple[str, ...]:
    """One or more user ids."""
    users = argument.split()
    if not users or any(not _USER_ID.match(u) for u in users):
        raise UsageError(" (user ids look like @name:server)")
    return tuple(users)


def one_user_argument(argument: str) -> tuple[str, ...]:
    users = user_arguments(argument)
    if len(users) != 1:
        raise UsageError
    return users


def user_and_device(low: int, high: int) -> ArgumentParser:
    """A user id, then up to a device id: `low` to `high` words."""

    def parse(argument: str) -> tuple[str, ...]:
        words = argument.split()
        if not low <= len(words) <= high or (words and not _USER_ID.match(words[0])):
            raise UsageError
        return tuple(words)

    return parse


def search_argument(argument: str) -> tuple[str, ...]:
    """A search query (search_query.py), checked here so a mistake is told
    before the Search view opens."""
    try:
        parse_query(argument)
    except QueryError as error:
        raise UsageError(f" ({error})") from None
    return (argument,)


def one_of(*choices: str) -> ArgumentParser:
    def parse(argument: str) -> tuple[str, ...]:
        if argument not in choices:
            raise UsageError
        return (argument,)

    return parse


def optional_one_of(*choices: str) -> ArgumentParser:
    """Nothing, or one of `choices`."""

    def parse(argument: str) -> tuple[str, ...]:
        if argument and argument not in choices:
            raise UsageError
        return (argument,) if argument else ()

    return parse


def on_off_global(argument: str) -> tuple[str, ...]:
    """ "on" or "off", then optionally "global"."""
    words = argument.split()
    if not words or words[0] not in ("on", "off") or words[1:] not in ([], ["global"]):
        raise UsageError
    return tuple(words)


def notify_arguments(argument: str) -> tuple[str, ...]:
    """Nothing (show), a room setting, or "global" and the group default."""
    words = argument.split()
    if not words:
        return ()
    if words[0] == "global":
        if len(words) != 2 or words[1] not in ("all", "mentions"):
            raise UsageError(" (/notify global all|mentions)")
        return tuple(words)
    if len(words) != 1 or words[0] not in ("all", "mentions", "mute", "default"):
        raise UsageError
    return tuple(words)


def keyword_arguments(argument: str) -> tuple[str, ...]:
    """Nothing (list them), or "add"/"remove" and one word."""
    words = argument.split()
    if not words:
        return ()
    if len(words) != 2 or words[0] not in ("add", "remove"):
        raise UsageError(" (one word at a time)")
    return tuple(words)


# -- room management (issue 22) -----------------------------------------------------------


def create_arguments(argument: str) -> tuple[str, ...]:
    """[--public] NAME [@invitee …] -> ("public"|"private", NAME, invitees…)."""
    words = argument.split()
    public = bool(words) and words[0] == "--public"
    if public:
        words = words[1:]
    invitees: list[str] = []
    while words and _USER_ID.match(words[-1]):
        invitees.insert(0, words.pop())
    if not words or any(w.startswith("@") for w in words):
        raise UsageError(" (user ids look like @name:server)")
    return ("public" if public else "private", " ".join(words), *invitees)


def user_and_reason(argument: str) -> tuple[str, ...]:
    """A user id, then an optional reason (the rest of the text)."""
    user, _, reason = argument.partition(" ")
    if not _USER_ID.match(user):
        raise UsageError(" (user ids look like @name:server)")
    return (user, reason.strip()) if reason.strip() else (user,)


def user_and_level(argument: str) -> tuple[str, ...]:
    words = argument.split()
    if len(words) != 2 or not _USER_ID.match(words[0]):
        raise UsageError
    try:
        level = int(words[1])
    except ValueError:
        raise UsageError(" (LEVEL is a whole number: 0 user, 50 moderator, 100 admin)") from None
    if abs(level) > 2**53 - 1:
        raise UsageError(" (LEVEL is too large)")
    return (words[0], str(level))


def optional_room(argument: str) -> tuple[str, ...]:
    return room_argument(argument) if argument else ()


def nick_arguments(argument: str) -> tuple[str, ...]:
    """[--room] NAME -> ("room"|"global", NAME)."""
    scope = "global"
    if argument.startswith("--room"):
        scope, argument = "room", argument.removeprefix("--room").strip()
    if not argument:
        raise UsageError
    return (scope, argument)


def space_arguments(argument: str) -> tuple[str, ...]:
    """create NAME | browse [SPACE] | add [SPACE] | remove [SPACE]."""
    action, _, rest = argument.partition(" ")
    rest = rest.strip()
    if action == "create" and rest:
        return (action, rest)
    if action in ("browse", "add", "remove") and (not rest or _ROOM_REF.match(rest)):
        return (action, rest) if rest else (action,)
    raise UsageError


def directory_arguments(argument: str) -> tuple[str, ...]:
    """[SERVER] [TERMS]: a first word with a dot or a colon names a server."""
    first, _, rest = argument.partition(" ")
    if first and re.fullmatch(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+(:\d+)?|localhost(:\d+)?", first):
        return (first, rest.strip())
    return ("", argument)


def vote_arguments(argument: str) -> tuple[str, ...]:
    """Answer numbers, as the poll numbers them: "2" or "1 3"."""
    words = argument.replace(",", " ").split()
    if not words or not all(w.isdigit() and 0 < int(w) <= 99 for w in words):
        raise UsageError(" (the answer's number, as the poll shows it)")
    return tuple(words)


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    parse_arguments: ArgumentParser = no_argument


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            "join",
            "/join #alias:server | !id:server",
            "join a room and switch to it",
            room_argument,
        ),
        CommandSpec("leave", "/leave", "leave the current room (asks first)"),
        CommandSpec(
            "dm", "/dm @user:server [@user2 …]", "open an encrypted direct message", user_arguments
        ),
        CommandSpec(
            "invite", "/invite @user:server", "invite someone to this room", one_user_argument
        ),
        CommandSpec("me", "/me TEXT", "send an action (emote)", text_argument),
        CommandSpec("plain", "/plain TEXT", "send TEXT as it is, without Markdown", text_argument),
        CommandSpec(
            "upload", "/upload PATH", "send a file (Tab completes the path)", text_argument
        ),
        CommandSpec(
            "download", "/download", "save the selected (or the latest) file to your downloads"
        ),
        CommandSpec(
            "membership",
            "/membership show|condense|hide",
            "how joins, leaves and name changes appear in the timeline",
            one_of("show", "condense", "hide"),
        ),
        CommandSpec("members", "/members", "list this room's members (Enter: their devices)"),
        CommandSpec(
            "devices",
            "/devices [@user:server]",
            "show devices, fingerprints and trust",
            user_and_device(0, 1),
        ),
        CommandSpec(
            "verify",
            "/verify @user:server [DEVICE]",
            "verify a device (a QR code for a phone to scan, or emoji)",
            user_and_device(1, 2),
        ),
        CommandSpec(
            "verifications",
            "/verifications",
            "open a verification request that did not open by itself",
        ),
        CommandSpec(
            "verify-device",
            "/verify-device @user:server DEVICE",
            "mark a device verified",
            user_and_device(2, 2),
        ),
        CommandSpec(
            "blacklist",
            "/blacklist @user:server DEVICE",
            "never send keys to a device",
            user_and_device(2, 2),
        ),
        CommandSpec(
            "verified-only",
            "/verified-only on|off [global]",
            "send keys only to verified devices (this room, or by default)",
            on_off_global,
        ),
        CommandSpec("recover", "/recover", "restore encrypted history (or set up recovery)"),
        # dehydrated devices (issue 26)
        CommandSpec(
            "dehydration",
            "/dehydration on|off",
            "keep a device on the server that receives keys while you are signed out",
            one_of("on", "off"),
        ),
        CommandSpec(
            "signed-only",
            "/signed-only verified|all|off",
            "keys only to devices their owners cross-signed (for verified people, all, off)",
            one_of("verified", "all", "off"),
        ),
        CommandSpec("retry", "/retry", "send this room's failed messages again"),
        CommandSpec(
            "export-keys",
            "/export-keys [--force] FILE",
            "save your room keys, passphrase-protected",
            text_argument,
        ),
        CommandSpec(
            "import-keys", "/import-keys FILE", "load room keys from an export file", text_argument
        ),
        # notifications and unread state (issue 23)
        CommandSpec(
            "notify",
            "/notify [all|mentions|mute|default] | global all|mentions",
            "this room's notifications, or group rooms' default (shared with Element)",
            notify_arguments,
        ),
        CommandSpec(
            "keyword",
            "/keyword [add|remove WORD]",
            "words that notify and highlight in every room; alone: list them",
            keyword_arguments,
        ),
        CommandSpec("unread", "/unread", "mark this room unread (reading it clears that)"),
        CommandSpec("mentions", "/mentions", "messages that mentioned you, newest first"),
        # -- room management (issue 22) --
        CommandSpec(
            "create",
            "/create [--public] NAME [@invitee:server …]",
            "create a room (private and encrypted unless --public)",
            create_arguments,
        ),
        CommandSpec("topic", "/topic TEXT", "set this room's topic", text_argument),
        CommandSpec("name", "/name TEXT", "rename this room", text_argument),
        CommandSpec("encrypt", "/encrypt", "turn on end-to-end encryption (cannot be undone)"),
        CommandSpec(
            "kick", "/kick @user:server [REASON]", "remove someone from this room", user_and_reason
        ),
        CommandSpec(
            "ban", "/ban @user:server [REASON]", "ban someone from this room", user_and_reason
        ),
        CommandSpec("unban", "/unban @user:server", "lift a ban", one_user_argument),
        CommandSpec(
            "op",
            "/op @user:server LEVEL",
            "set someone's power level (50 moderator, 100 admin)",
            user_and_level,
        ),
        CommandSpec(
            "forget",
            "/forget [!id:server]",
            "forget a room you left (the one you left last)",
            optional_room,
        ),
        CommandSpec(
            "nick",
            "/nick [--room] NAME",
            "set your display name (everywhere, or in this room only)",
            nick_arguments,
        ),
        CommandSpec(
            "space",
            "/space create NAME | browse | add | remove [!space]",
            "spaces: create one; browse the chosen space's rooms (Enter joins); "
            "add or remove this room",
            space_arguments,
        ),
        CommandSpec(
            "directory",
            "/directory [SERVER] [TERMS]",
            "search a server's public rooms (Enter joins)",
            directory_arguments,
        ),
        CommandSpec(
            "ignore",
            "/ignore @user:server",
            "hide someone's messages and invites",
            one_user_argument,
        ),
        CommandSpec(
            "unignore", "/unignore @user:server", "stop ignoring someone", one_user_argument
        ),
        CommandSpec(
            "report",
            "/report [REASON]",
            "report the selected message to your server's admins",
            lambda argument: (argument,),
        ),
        CommandSpec("pin", "/pin", "pin the selected message"),
        CommandSpec("unpin", "/unpin", "unpin the selected message"),
        CommandSpec("pins", "/pins", "list this room's pinned messages (Enter: go to one)"),
        CommandSpec("notice", "/notice TEXT", "send TEXT as a notice (as bots do)", text_argument),
        CommandSpec(
            "settings", "/settings", "this room's settings (editable as your power allows)"
        ),
        CommandSpec(
            "vote",
            "/vote N [N …]",
            "vote on the selected poll (or the latest one in this room)",
            vote_arguments,
        ),
        CommandSpec(
            "help", "/help", f"every command and key (also {key_label(DEFAULT_KEYS['help'])})"
        ),
        # The account page (issue 20: OAuth 2.0 API).
        CommandSpec(
            "account",
            "/account [profile|sessions|device|end-device|cross-signing-reset]",
            "open your account's page on the server (OAuth 2.0 API servers)",
            optional_one_of("profile", "sessions", "device", "end-device", "cross-signing-reset"),
        ),
        # threads (issue 21)
        CommandSpec(
            "thread",
            "/thread",
            "open the selected message's thread (else the latest thread) beside the room",
        ),
        CommandSpec(
            "threads",
            "/threads [mine]",
            f"this room's threads, or yours (also {key_label(DEFAULT_KEYS['threads'])})",
            threads_argument,
        ),
        # search (issue 24)
        CommandSpec(
            "search",
            "/search TERMS [--all]",
            "find messages here (--all: every room); filters: from:@user in:#room "
            'has:file|image|link before:/after:YYYY-MM-DD "a phrase"'
            f" (also {key_label(DEFAULT_KEYS['search'])})",
            search_argument,
        ),
    )
}


@dataclass(frozen=True)
class Message:
    """Plain text to send (including text that starts with `//`)."""

    text: str


@dataclass(frozen=True)
class Command:
    name: str
    argument: str  # the text after the name, stripped
    # The argument as the command's parser split it (not compared: it
    # follows from the argument).
    args: tuple[str, ...] = field(default=(), compare=False)


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
    try:
        args = spec.parse_arguments(argument)
    except UsageError as error:
        return CommandError(f"Usage: {spec.usage}{error.hint}")
    return Command(name, argument, args)
