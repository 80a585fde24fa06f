"""Textual bindings made from the key table (`tuichat.model.keys`)."""

from __future__ import annotations

from textual.binding import Binding

from tuichat.model.keys import KeyAction, KeyScope, in_scope


def binding(action: KeyAction, textual_action: str | None = None) -> Binding:
    """`textual_action`: what the key runs, when it is not `action_<id>`."""
    return Binding(
        action.keys,
        textual_action or action.id,
        action.description,
        show=action.show,
        priority=action.priority,
        id=action.id,
    )


def app_bindings() -> list[Binding]:
    """The App's bindings: every action that works anywhere."""
    return [binding(action) for action in in_scope(KeyScope.APP)]


def selected_message_bindings() -> list[Binding]:
    """The timeline's bindings for what is done to the selected message:
    each runs its `act(id)`."""
    return [
        binding(action, f"act('{action.id}')") for action in in_scope(KeyScope.SELECTED_MESSAGE)
    ]
