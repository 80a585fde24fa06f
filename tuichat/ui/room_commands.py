"""What the room-management slash commands do (issue 22): creating rooms
and spaces, topic and name, encryption, moderation, the space browser and
the room directory, ignoring, reporting, pins, notices, room settings and
poll votes. Their rows are in `tuichat/model/commands.py`; `ROOM_HANDLERS`
joins the table in `tuichat/ui/commands.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tuichat.model.commands import Command
from tuichat.model.sanitize import safe_line, trusted
from tuichat.ui.command_context import CommandContext, CommandHandler, confirm

if TYPE_CHECKING:
    from tuichat.model.items import TimelineItem
    from tuichat.model.space_tree import HierarchyRoom


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
    confirm(
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


ROOM_HANDLERS: dict[str, CommandHandler] = {
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
}
