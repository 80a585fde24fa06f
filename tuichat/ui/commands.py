"""What each slash command does: one handler per row of the command table
(`tuichat.model.commands.COMMANDS`, which parses), run by `run_command`.

A handler takes the App and the parsed command. Whether it needs the
service or a room is said in its row here, so the "Not connected yet." and
"Choose a room first" messages are told in one place, in the same order for
every command. The handlers use the App's chat actions (sending, uploads,
dialogs); they move with those actions when the App's chat work moves to
the main screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuichat.model.commands import Command
from tuichat.model.draft import DraftKind
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.sanitize import safe_line, safe_text, trusted
from tuichat.ui.widgets.timeline_view import MembershipDisplay

if TYPE_CHECKING:
    from tuichat.ui.app import TuichatApp

Handler = Callable[["TuichatApp", Command, Mapping[str, str]], None]


@dataclass(frozen=True)
class CommandHandler:
    run: Handler  # (app, command, mentions completed in the composer)
    needs_service: bool = True
    needs_room: bool = False


def choose_a_room(app: TuichatApp) -> None:
    key = app.key_label("switch_room")  # as bound (the config may change it)
    app.main.feedback.show(safe_line(f"Choose a room first ({key})."), error=True)


def send_text(
    app: TuichatApp, text: str, mentions: Mapping[str, str], *, emote: bool, markdown: bool
) -> None:
    """Text typed in the composer: a new message, a reply, or an edit
    (whatever the draft bar says)."""
    feedback = app.main.feedback
    if app.service is None:
        feedback.show("Not connected yet.", error=True)
        return
    room_id = app.current_room_id
    if room_id is None:
        choose_a_room(app)
        return
    app._stop_typing()
    draft, app.draft = app.draft, None
    app.main.draft_bar.hide()
    if draft is not None and draft.kind is DraftKind.EDIT and draft.item.event_id:
        original = draft.item
        app.service.edit_message(
            room_id,
            original.event_id,
            text,
            emote=emote or original.kind is ItemKind.EMOTE,
            markdown=markdown,
            mentions=dict(mentions),
        )
        return
    reply = draft.item if draft is not None and draft.kind is DraftKind.REPLY else None
    app.main.timeline.jump_to_latest()  # what you send shows, as in Element
    app.service.send_message(
        room_id,
        text,
        emote=emote,
        markdown=markdown,
        mentions=dict(mentions),
        reply_to=reply.event_id if reply else None,
        reply_sender=reply.sender if reply else None,
    )


def run_command(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    handler = HANDLERS[command.name]
    if handler.needs_service and app.service is None:
        app.main.feedback.show("Not connected yet.", error=True)
    elif handler.needs_room and app.current_room_id is None:
        choose_a_room(app)
    else:
        handler.run(app, command, mentions)


# -- the handlers, in the command table's order --------------------------------------
# Each runs after the checks its row asks for: `app.service` (and, where
# needed, `app.current_room_id`) is set.


def _join(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None
    app._run_service_call(app.service.join(command.args[0]))


def _leave(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None and app.current_room_id is not None
    app._run_service_call(app.service.leave(app.current_room_id))


def _dm(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None
    app._with_progress("Opening an encrypted DM…", app.service.create_dm(list(command.args)))


def _invite(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None and app.current_room_id is not None
    app._run_service_call(app.service.invite(app.current_room_id, command.args[0]))


def _me(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    send_text(app, command.argument, mentions, emote=True, markdown=True)


def _plain(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    send_text(app, command.argument, mentions, emote=False, markdown=False)


def _upload(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.current_room_id is not None
    app._upload(app.current_room_id, Path(command.argument).expanduser())


def _download(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    item = _latest_attachment(app)
    if item is None:
        app.main.feedback.show("No file in this room to download.", error=True)
    else:
        app._download(item)


def _latest_attachment(app: TuichatApp) -> TimelineItem | None:
    """The selected file, else the newest one in this room."""
    selected = app.main.timeline.selected_item
    if selected is not None and selected.attachment is not None:
        return selected
    if app.current_room_id is None:
        return None
    timeline = app._timeline(app.current_room_id)
    for index in range(len(timeline) - 1, -1, -1):
        if timeline[index].attachment is not None:
            return timeline[index]
    return None


def _membership(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app._set_membership_display(MembershipDisplay(command.argument))
    app.main.feedback.show(safe_text(f"Membership changes: {command.argument}."))


def _members(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app.action_members()


def _devices(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app.open_devices(command.args[0] if command.args else app.user_id)


def _verify(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    user_id, *device = command.args
    app._start_verification(user_id, device[0] if device else None)


def _verifications(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app.open_pending_verification()


def _set_device_trust(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    """/verify-device and /blacklist."""
    assert app.service is not None
    user_id, device_id = command.args
    action = "verify" if command.name == "verify-device" else "blacklist"
    feedback = app.main.feedback
    if app.service.set_device_trust(user_id, device_id, action):
        feedback.show(safe_text(f"{device_id} of {user_id}: {action}ed."))
    else:
        feedback.show(
            safe_text(f"{user_id} has no device {device_id} (try /devices {user_id})"),
            error=True,
        )


def _verified_only(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None
    on_off, *scope = command.args
    feedback, room_id = app.main.feedback, app.current_room_id
    if scope == ["global"]:
        app.service.set_verified_only(None, on_off == "on")
        feedback.show(safe_text(f"Keys go only to verified devices by default: {on_off}."))
    elif room_id is None:
        choose_a_room(app)
    else:
        app.service.set_verified_only(room_id, on_off == "on")
        feedback.show(safe_text(f"In this room, keys go only to verified devices: {on_off}."))


def _recover(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app._open_recovery()


def _signed_only(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    assert app.service is not None
    app.service.set_signed_only(command.argument)
    app.main.feedback.show(
        safe_text(f"Room keys only to devices their owners signed: {command.argument}.")
    )


def _retry(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app.action_retry_failed()


def _keys_file(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    """/export-keys and /import-keys: a wrong file is told before the
    passphrase is asked."""
    from tuichat.matrix.crypto import key_export
    from tuichat.ui.screens.passphrase import PassphraseDialog

    name, argument = command.name, command.argument
    force = name == "export-keys" and argument.startswith("--force ")
    path = Path(argument.removeprefix("--force ").strip() if force else argument).expanduser()
    try:
        if name == "export-keys":
            key_export.check_export_target(path, force=force)
        else:
            key_export.read_key_file(path, key_export.HEAD_BYTES)
    except key_export.KeyFileError as error:
        told = str(error).replace("; --force", "; /export-keys --force FILE")
        app.main.feedback.show(safe_line(told), error=True)
        return
    if name == "export-keys":
        dialog = PassphraseDialog(
            trusted("Export room keys"),
            safe_text(
                f"The keys will be written to {path}, encrypted with this passphrase. "
                "Anyone with the file and the passphrase can read your encrypted history."
            ),
            confirm=True,
            check=key_export.passphrase_problem,
        )
    else:
        dialog = PassphraseDialog(
            trusted("Import room keys"),
            safe_line(f"The passphrase that protects {path}."),
            confirm=False,
        )

    def chosen(passphrase: str | None) -> None:
        if passphrase:
            app.run_worker(
                _run_keys_file(app, name, path, passphrase),
                group="keys",
                exclusive=True,
                exit_on_error=False,
            )
        app.main.composer.focus()

    app.push_screen(dialog, chosen)


async def _run_keys_file(app: TuichatApp, name: str, path: Path, passphrase: str) -> None:
    from tuichat.matrix.crypto.key_export import KeyFileError

    feedback = app.main.feedback
    service = app.service
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
    except (KeyFileError, OSError, UnicodeDecodeError) as error:
        feedback.show(safe_text(f"Key {name.split('-')[0]} failed: {error}"), error=True)
        return
    invalid = f", {result.invalid} unusable" if result.invalid else ""
    feedback.show(
        safe_text(
            f"Imported {result.imported} new room keys ({result.total} in the file{invalid})."
        )
    )


def _help(app: TuichatApp, command: Command, mentions: Mapping[str, str]) -> None:
    app.action_help()


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
    "help": CommandHandler(_help, needs_service=False),
}
