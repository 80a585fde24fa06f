"""What a slash command's handler is given and how its row says what it
needs: `CommandContext`, `CommandHandler`, and `confirm` for commands that
ask first. Shared by `tuichat/ui/commands.py` and `tuichat/ui/room_commands.py`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuichat.model.commands import Command
from tuichat.model.sanitize import SafeText

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
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


def confirm(
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
