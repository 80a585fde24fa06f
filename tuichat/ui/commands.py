"""What each slash command does: one handler per row of the command table
(`tuichat.model.commands.COMMANDS`, which parses), run by `run_command`.

A handler takes a `CommandContext` (the chat controllers it may use) and
the parsed command. Whether it needs the service or a room is said in its
row here, so the "Not connected yet." and "Choose a room first" messages are
told in one place, in the same order for every command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuichat.model.commands import Command
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.ui.widgets.timeline_view import MembershipDisplay

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.model.items import TimelineItem
    from tuichat.model.space_tree import HierarchyRoom
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.controllers.attachments import Attachments
    from tuichat.ui.controllers.chat import ChatController
    from tuichat.ui.controllers.people import People


@dataclass(frozen=True)
class CommandContext:
    """What a slash command may use: the App (for its public Textual API:
    screens, workers, help) and the chat controllers."""

    app: TuichatApp
    chat: ChatController
    files: Attachments
    people: People

    @property
    def service(self) -> MatrixService | None:
        return self.chat.service

    @property
    def room_id(self) -> str | None:
        return self.chat.room_id


Handler = Callable[[CommandContext, Command, Mapping[str, str]], None]


@dataclass(frozen=True)
class CommandHandler:
    run: Handler  # (context, command, mentions completed in the composer)
    needs_service: bool = True
    needs_room: bool = False


def run_command(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    handler = HANDLERS[command.name]
    if handler.needs_service and ctx.service is None:
        ctx.chat.main.feedback.show("Not connected yet.", error=True)
    elif handler.needs_room and ctx.room_id is None:
        ctx.chat.choose_a_room()
    else:
        handler.run(ctx, command, mentions)


# -- the handlers, in the command table's order --------------------------------------
# Each runs after the checks its row asks for: `ctx.service` (and, where
# needed, `ctx.room_id`) is set.


def _join(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    ctx.chat.run_service_call(ctx.service.join(command.args[0]))


def _leave(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    service, room_id = ctx.service, ctx.room_id
    _confirm(
        ctx,
        trusted("Leave this room?"),
        trusted("To come back to a private room you need a new invitation."),
        trusted("Leave"),
        lambda: ctx.chat.run_service_call(service.leave(room_id)),
    )


def _confirm(
    ctx: CommandContext,
    question: SafeText,
    detail: SafeText,
    yes: SafeText,
    then: Callable[[], None],
) -> None:
    """Ask first; `then` runs on yes."""
    from tuichat.ui.screens.confirm import ConfirmDialog

    def answered(answer: bool | None) -> None:
        if answer:
            then()
        ctx.chat.main.composer.focus()

    ctx.app.push_screen(ConfirmDialog(question, detail, yes), answered)


def _dm(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    ctx.chat.with_progress(
        trusted("Opening an encrypted DM…"), ctx.service.create_dm(list(command.args))
    )


def _invite(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    ctx.chat.run_service_call(ctx.service.invite(ctx.room_id, command.args[0]))


def _me(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.chat.send_text(command.argument, mentions, emote=True, markdown=True)


def _plain(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.chat.send_text(command.argument, mentions, emote=False, markdown=False)


def _upload(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.room_id is not None
    ctx.files.upload(ctx.room_id, Path(command.argument).expanduser())


def _download(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    item = ctx.chat.latest_attachment()
    if item is None:
        ctx.chat.main.feedback.show("No file in this room to download.", error=True)
    else:
        ctx.files.download(item)


def _membership(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.chat.set_membership_display(MembershipDisplay(command.argument))
    ctx.chat.main.feedback.show(safe_text(f"Membership changes: {command.argument}."))


def _members(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.people.members()


def _devices(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.people.open_devices(command.args[0] if command.args else ctx.chat.state.user_id)


def _verify(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    user_id, *device = command.args
    ctx.people.start_verification(user_id, device[0] if device else None)


def _verifications(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.people.open_pending_verification()


def _set_device_trust(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """/verify-device and /blacklist."""
    assert ctx.service is not None
    user_id, device_id = command.args
    action = "verify" if command.name == "verify-device" else "blacklist"
    feedback = ctx.chat.main.feedback
    if ctx.service.set_device_trust(user_id, device_id, action):
        feedback.show(safe_text(f"{device_id} of {user_id}: {action}ed."))
    else:
        feedback.show(
            safe_text(f"{user_id} has no device {device_id} (try /devices {user_id})"),
            error=True,
        )


def _verified_only(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    on_off, *scope = command.args
    feedback, room_id = ctx.chat.main.feedback, ctx.room_id
    if scope == ["global"]:
        ctx.service.set_verified_only(None, on_off == "on")
        feedback.show(safe_text(f"Keys go only to verified devices by default: {on_off}."))
    elif room_id is None:
        ctx.chat.choose_a_room()
    else:
        ctx.service.set_verified_only(room_id, on_off == "on")
        feedback.show(safe_text(f"In this room, keys go only to verified devices: {on_off}."))


def _recover(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.people.open_recovery()


def _signed_only(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    ctx.service.set_signed_only(command.argument)
    ctx.chat.main.feedback.show(
        safe_text(f"Room keys only to devices their owners signed: {command.argument}.")
    )


def _retry(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.chat.retry_failed()


def _keys_file(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """/export-keys and /import-keys: a wrong file is told before the
    passphrase is asked."""
    # Paid by these two commands only: the key file's crypto costs about
    # 40 ms to import, and the dialog is imported where it opens, as all are.
    from tuichat.matrix import service as key_files
    from tuichat.ui.screens.passphrase import PassphraseDialog

    name, argument = command.name, command.argument
    force = name == "export-keys" and argument.startswith("--force ")
    path = Path(argument.removeprefix("--force ").strip() if force else argument).expanduser()
    try:
        if name == "export-keys":
            key_files.check_export_target(path, force=force)
        else:
            key_files.read_key_file(path, key_files.KEY_FILE_HEAD_BYTES)
    except key_files.KeyFileError as error:
        told = str(error).replace("; --force", "; /export-keys --force FILE")
        ctx.chat.main.feedback.show(safe_line(told), error=True)
        return
    if name == "export-keys":
        dialog = PassphraseDialog(
            trusted("Export room keys"),
            safe_text(
                f"The keys will be written to {path}, encrypted with this passphrase. "
                "Anyone with the file and the passphrase can read your encrypted history."
            ),
            confirm=True,
            check=key_files.passphrase_problem,
        )
    else:
        dialog = PassphraseDialog(
            trusted("Import room keys"),
            safe_line(f"The passphrase that protects {path}."),
            confirm=False,
        )

    def chosen(passphrase: str | None) -> None:
        if passphrase:
            ctx.app.run_worker(
                _run_keys_file(ctx, name, path, passphrase, key_files.KeyFileError),
                group="keys",
                exclusive=True,
                exit_on_error=False,
            )
        ctx.chat.main.composer.focus()

    ctx.app.push_screen(dialog, chosen)


async def _run_keys_file(
    ctx: CommandContext, name: str, path: Path, passphrase: str, file_error: type[Exception]
) -> None:
    feedback = ctx.chat.main.feedback
    service = ctx.service
    if service is None:
        feedback.show("Not connected yet.", error=True)
        return
    try:
        if name == "export-keys":
            feedback.show("Exporting room keys…")
            count = await service.export_keys(path, passphrase)
            feedback.show(safe_text(f"Exported {count} room keys to {path}."))
            return
        feedback.show("Decrypting the key file…")
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")

        def progress(done: int, total: int) -> None:
            feedback.show(f"Importing room keys… {done}/{total}")

        result = await service.import_keys(text, passphrase, progress)
    except (file_error, OSError, UnicodeDecodeError) as error:
        feedback.show(safe_text(f"Key {name.split('-')[0]} failed: {error}"), error=True)
        return
    invalid = f", {result.invalid} unusable" if result.invalid else ""
    feedback.show(
        safe_text(
            f"Imported {result.imported} new room keys ({result.total} in the file{invalid})."
        )
    )


# -- room management (issue 22) ------------------------------------------------------


def _create(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    kind, name, *invitees = command.args
    ctx.chat.with_progress(
        trusted("Creating the room…"),
        ctx.service.create_named_room(name, public=kind == "public", invite=tuple(invitees)),
    )


def _topic(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    ctx.chat.run_service_call(ctx.service.set_topic(ctx.room_id, command.argument))


def _name(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    ctx.chat.run_service_call(ctx.service.set_room_name(ctx.room_id, command.argument))


def _encrypt(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    service, room_id = ctx.service, ctx.room_id
    _confirm(
        ctx,
        trusted("Turn on encryption in this room?"),
        trusted(
            "This cannot be undone. New messages will be readable only by members' "
            "devices; bridges and bots without encryption stop working."
        ),
        trusted("Encrypt"),
        lambda: ctx.chat.run_service_call(service.enable_encryption(room_id)),
    )


def _kick_or_ban(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    user_id, *reason = command.args
    act = ctx.service.kick if command.name == "kick" else ctx.service.ban
    ctx.chat.run_service_call(act(ctx.room_id, user_id, reason[0] if reason else None))


def _unban(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    ctx.chat.run_service_call(ctx.service.unban(ctx.room_id, command.args[0]))


def _op(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    user_id, level = command.args
    ctx.chat.run_service_call(ctx.service.set_power_level(ctx.room_id, user_id, int(level)))


def _forget(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    ctx.chat.run_service_call(ctx.service.forget(command.args[0] if command.args else None))


def _nick(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    scope, name = command.args
    if scope == "room" and ctx.room_id is None:
        ctx.chat.choose_a_room()
        return
    room_id = ctx.room_id if scope == "room" else None
    ctx.chat.run_service_call(ctx.service.set_display_name(name, room_id))


def _space(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """/space create | browse | add | remove: the space is the one named, else
    the one chosen in the room list (Alt+S), else the one the room is in."""
    assert ctx.service is not None
    action, *rest = command.args
    service, feedback = ctx.service, ctx.chat.main.feedback
    if action == "create":
        ctx.chat.with_progress(trusted("Creating the space…"), service.create_space(rest[0]))
        return
    room_list = ctx.chat.main.room_list
    space_id = rest[0] if rest else room_list.scoped_space or room_list.selected_space()
    if space_id is None:
        feedback.show("Choose a space first (Alt+S), or name it: /space browse !id.", error=True)
        return
    if action in ("add", "remove"):
        if ctx.room_id is None:
            ctx.chat.choose_a_room()
            return
        call = service.set_space_child(space_id, ctx.room_id, action == "add")
        ctx.chat.run_service_call(call)
        return
    ctx.app.run_worker(_browse(ctx, space_id, None, ""), group="space", exclusive=True)


async def _browse(
    ctx: CommandContext, space_id: str | None, server: str | None, terms: str
) -> None:
    """A space's rooms (`space_id`), or a server's directory: Enter joins."""
    from tuichat.ui.screens.space_browser import SpaceBrowser

    service = ctx.service
    if service is None:
        return
    feedback = ctx.chat.main.feedback
    if space_id is not None:
        feedback.show("Reading the space's rooms…")
        rooms = await service.space_hierarchy(space_id)
        summary = ctx.chat.state.rooms.get(space_id)
        name = safe_line(f"Rooms of {summary.name if summary is not None else space_id}")
    else:
        feedback.show("Searching the room directory…")
        rooms = await service.directory(server, terms)
        where = server or ctx.chat.state.user_id.partition(":")[2]
        name = safe_line(f"Public rooms on {where}" + (f" matching {terms}" if terms else ""))
    feedback.hide()
    if rooms is None:
        return

    def chosen(room: HierarchyRoom | None) -> None:
        if room is not None and service is ctx.service:
            if room.joined:
                ctx.chat.switch_room(room.room_id)
            else:
                ctx.chat.with_progress(
                    safe_line(f"Joining {room.name}…"), service.join_via(room.room_id, room.via)
                )
        ctx.chat.main.composer.focus()

    ctx.app.push_screen(SpaceBrowser(name, rooms), chosen)


def _directory(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    server, terms = command.args
    ctx.app.run_worker(_browse(ctx, None, server or None, terms), group="space", exclusive=True)


def _chosen_message(ctx: CommandContext) -> TimelineItem | None:
    """The message selected (or selected last, before typing the command)
    in this room; None, told, when there is none."""
    view = ctx.chat.main.timeline
    item = view.selected_item or view.last_selected
    if (
        item is not None
        and ctx.room_id is not None
        and item.event_id is not None
        and any(i.event_id == item.event_id for i in ctx.chat.state.timeline(ctx.room_id))
    ):
        return item
    key = ctx.chat.key_label("select_message")
    ctx.chat.main.feedback.show(safe_line(f"Select the message first ({key})."), error=True)
    return None


def _ignore(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None
    call = ctx.service.set_ignored(command.args[0], command.name == "ignore")
    ctx.chat.run_service_call(call)


def _report(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    item = _chosen_message(ctx)
    if item is None or item.event_id is None:
        return
    ctx.chat.run_service_call(ctx.service.report(ctx.room_id, item.event_id, command.argument))


def _pin(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    item = _chosen_message(ctx)
    if item is None or item.event_id is None:
        return
    call = ctx.service.set_pinned(ctx.room_id, item.event_id, command.name == "pin")
    ctx.chat.run_service_call(call)


def _pins(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.run_worker(ctx.people.show_pins(), group="pins", exclusive=True)


def _notice(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    ctx.service.send_notice(ctx.room_id, command.argument)


def _settings(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.people.room_settings()


def _vote(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.service is not None and ctx.room_id is not None
    feedback = ctx.chat.main.feedback
    item = ctx.chat.main.timeline.selected_item
    if item is None or item.poll is None:
        timeline = ctx.chat.state.timeline(ctx.room_id)
        item = next((i for i in reversed(timeline) if i.poll is not None), None)
    if item is None or item.poll is None or item.event_id is None:
        feedback.show("No poll in this room to vote on.", error=True)
        return
    answers = item.poll.answers
    numbers = [int(n) for n in command.args]
    if any(n > len(answers) for n in numbers):
        feedback.show(safe_line(f"This poll has {len(answers)} answers."), error=True)
        return
    if len(numbers) > item.poll.max_selections:
        feedback.show(
            safe_line(f"This poll takes at most {item.poll.max_selections} answer(s)."), error=True
        )
        return
    chosen = [answers[n - 1].answer_id for n in numbers]
    ctx.service.vote(ctx.room_id, item.event_id, item.poll, chosen)
    picked = ", ".join(answers[n - 1].text for n in numbers)
    feedback.show(safe_line(f"Voted: {picked}."))


def _help(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.action_help()


HANDLERS: dict[str, CommandHandler] = {
    "join": CommandHandler(_join),
    "leave": CommandHandler(_leave, needs_room=True),
    "dm": CommandHandler(_dm),
    "invite": CommandHandler(_invite, needs_room=True),
    "me": CommandHandler(_me),
    "plain": CommandHandler(_plain),
    "upload": CommandHandler(_upload, needs_room=True),
    "download": CommandHandler(_download, needs_room=True),
    "membership": CommandHandler(_membership),
    "members": CommandHandler(_members),
    "devices": CommandHandler(_devices),
    "verify": CommandHandler(_verify),
    "verifications": CommandHandler(_verifications),
    "verify-device": CommandHandler(_set_device_trust),
    "blacklist": CommandHandler(_set_device_trust),
    "verified-only": CommandHandler(_verified_only),
    "recover": CommandHandler(_recover),
    "signed-only": CommandHandler(_signed_only),
    "retry": CommandHandler(_retry),
    "export-keys": CommandHandler(_keys_file),
    "import-keys": CommandHandler(_keys_file),
    # room management (issue 22)
    "create": CommandHandler(_create),
    "topic": CommandHandler(_topic, needs_room=True),
    "name": CommandHandler(_name, needs_room=True),
    "encrypt": CommandHandler(_encrypt, needs_room=True),
    "kick": CommandHandler(_kick_or_ban, needs_room=True),
    "ban": CommandHandler(_kick_or_ban, needs_room=True),
    "unban": CommandHandler(_unban, needs_room=True),
    "op": CommandHandler(_op, needs_room=True),
    "forget": CommandHandler(_forget),
    "nick": CommandHandler(_nick),
    "space": CommandHandler(_space),
    "directory": CommandHandler(_directory),
    "ignore": CommandHandler(_ignore),
    "unignore": CommandHandler(_ignore),
    "report": CommandHandler(_report, needs_room=True),
    "pin": CommandHandler(_pin, needs_room=True),
    "unpin": CommandHandler(_pin, needs_room=True),
    "pins": CommandHandler(_pins, needs_room=True),
    "notice": CommandHandler(_notice, needs_room=True),
    "settings": CommandHandler(_settings, needs_room=True),
    "vote": CommandHandler(_vote, needs_room=True),
    "help": CommandHandler(_help, needs_service=False),
}
