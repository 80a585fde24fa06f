"""What each slash command does: one handler per row of the command table
(`tuichat.model.commands.COMMANDS`, which parses), run by `run_command`.

A handler takes a `CommandContext` (the chat controllers it may use) and
the parsed command. Whether it needs the service or a room is said in its
row here, so the "Not connected yet." and "Choose a room first" messages are
told in one place, in the same order for every command.

One concept seen from two sides, hence two modules of this name: this one
carries commands out; `tuichat/model/commands.py` parses what was typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tuichat.matrix.service import Failed
from tuichat.model.commands import Command
from tuichat.model.sanitize import safe_line, safe_text, trusted
from tuichat.ui.command_context import CommandContext, CommandHandler, confirm
from tuichat.ui.room_commands import ROOM_HANDLERS
from tuichat.ui.widgets.timeline_view import MembershipDisplay

if TYPE_CHECKING:
    pass


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
    confirm(
        ctx,
        trusted("Leave this room?"),
        trusted("To come back to a private room you need a new invitation."),
        trusted("Leave"),
        lambda: ctx.chat.run_service_call(service.leave(room_id)),
    )


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


def _dehydration(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """Dehydrated devices (issue 26): the setting, said back as the service did it."""
    service, feedback = ctx.service, ctx.chat.main.feedback
    assert service is not None

    async def run() -> None:
        result = await service.set_dehydration(command.argument == "on")
        if isinstance(result, Failed):
            feedback.show(safe_line(f"Dehydrated device: {result.message}"), error=True)
        else:
            feedback.show(safe_text(result))

    ctx.chat.with_progress(trusted("Dehydrated device…"), run())


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
    from tuichat.ui.screens.passphrase import PassphraseDialog

    service = ctx.service
    assert service is not None
    name, argument = command.name, command.argument
    force = name == "export-keys" and argument.startswith("--force ")
    path = Path(argument.removeprefix("--force ").strip() if force else argument).expanduser()
    problem = service.check_key_file(path, export=name == "export-keys", force=force)
    if problem is not None:
        told = problem.message.replace("; --force", "; /export-keys --force FILE")
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
            check=service.passphrase_problem,
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
                _run_keys_file(ctx, name, path, passphrase),
                group="keys",
                exclusive=True,
                exit_on_error=False,
            )
        ctx.chat.main.composer.focus()

    ctx.app.push_screen(dialog, chosen)


async def _run_keys_file(ctx: CommandContext, name: str, path: Path, passphrase: str) -> None:
    feedback = ctx.chat.main.feedback
    service = ctx.service
    if service is None:
        feedback.show("Not connected yet.", error=True)
        return
    failed = f"Key {name.split('-')[0]} failed"
    if name == "export-keys":
        feedback.show("Exporting room keys…")
        count = await service.export_keys(path, passphrase)
        if isinstance(count, Failed):
            feedback.show(safe_text(f"{failed}: {count.message}"), error=True)
        else:
            feedback.show(safe_text(f"Exported {count} room keys to {path}."))
        return
    feedback.show("Decrypting the key file…")
    text = await service.read_key_file(path)
    if isinstance(text, Failed):
        feedback.show(safe_text(f"{failed}: {text.message}"), error=True)
        return

    def progress(done: int, total: int) -> None:
        feedback.show(f"Importing room keys… {done}/{total}")

    result = await service.import_keys(text, passphrase, progress)
    if isinstance(result, Failed):
        feedback.show(safe_text(f"{failed}: {result.message}"), error=True)
        return
    invalid = f", {result.invalid} unusable" if result.invalid else ""
    feedback.show(
        safe_text(
            f"Imported {result.imported} new room keys ({result.total} in the file{invalid})."
        )
    )


# -- notifications and unread state (issue 23) --


def _notify(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.room_id is not None
    if command.args[:1] == ("global",):
        ctx.app.alerts.group_default(command.args[1])
    else:
        ctx.app.alerts.room_mode(ctx.room_id, command.args[0] if command.args else None)


def _keyword(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.alerts.keyword(command.args)


def _unread(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    assert ctx.room_id is not None
    ctx.app.alerts.mark_unread(ctx.room_id)


def _mentions(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.alerts.open_mentions()


def _help(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.action_help()


# -- the account page (issue 20: OAuth 2.0 API) -------------------------------------


def _account(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    action = command.args[0] if command.args else None
    ctx.app.run_worker(_open_account_page(ctx, action), group="commands", exit_on_error=False)


async def _open_account_page(ctx: CommandContext, action: str | None) -> None:
    from tuichat.ui.manage_account import open_account_page

    feedback, service = ctx.chat.main.feedback, ctx.service
    if service is None:
        feedback.show("Not connected yet.", error=True)
        return
    await open_account_page(service, action, lambda text, error: feedback.show(text, error=error))


def _thread(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """The selected message's thread, else the room's latest thread."""
    threads = ctx.app.threads
    selected = ctx.app.main.timeline.selected_item
    if selected is not None:
        threads.open_for(selected)
        return
    room_id = ctx.room_id
    ordered = ctx.app.state.timeline(room_id).ordered_threads() if room_id else []
    if ordered:
        threads.open(ordered[0].root)
    else:
        threads.open_list()


def _threads(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    ctx.app.threads.open_list(participated=command.args == ("mine",))


def _search(ctx: CommandContext, command: Command, mentions: Mapping[str, str]) -> None:
    """search (issue 24)"""
    ctx.app.searching.open(command.argument)


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
    "dehydration": CommandHandler(_dehydration),  # issue 26
    "signed-only": CommandHandler(_signed_only),
    "retry": CommandHandler(_retry),
    "export-keys": CommandHandler(_keys_file),
    "import-keys": CommandHandler(_keys_file),
    # notifications and unread state (issue 23)
    "notify": CommandHandler(_notify, needs_room=True),
    "keyword": CommandHandler(_keyword),
    "unread": CommandHandler(_unread, needs_room=True),
    "mentions": CommandHandler(_mentions, needs_service=False),
    # room management (issue 22): tuichat/ui/room_commands.py
    **ROOM_HANDLERS,
    "help": CommandHandler(_help, needs_service=False),
    # The account page (issue 20: OAuth 2.0 API).
    "account": CommandHandler(_account),
    # threads (issue 21)
    "thread": CommandHandler(_thread, needs_service=False, needs_room=True),
    "threads": CommandHandler(_threads, needs_service=False, needs_room=True),
    "search": CommandHandler(_search),  # issue 24
}
