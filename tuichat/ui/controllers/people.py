"""People and trust, from the main screen: rooms to join or switch to,
invites, new direct messages, a room's members, the Devices screen, key
verification requests (which dialog shows one, or the /verifications queue)
and the recovery dialog.

The dialogs carry out their own workflows through the service handed to
them; this module decides which one opens, and when. Dialogs are imported
where they open (see `tuichat.ui.controllers.chat`). A service call that
fails in an expected way returns `Failed`, told on the feedback line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuichat.matrix.service import Failed
from tuichat.model.rooms import RoomSummary
from tuichat.model.sanitize import safe_line, safe_text, trusted
from tuichat.model.verification import Phase, VerificationView

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.room_settings import SettingsChange
    from tuichat.ui.screens.verification import VerificationDialog

# Unsolicited verification requests kept for /verifications (oldest dropped).
MAX_PENDING_VERIFICATIONS = 20


class People:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app
        # Unsolicited verification requests not opened yet (/verifications).
        self.pending_verifications: dict[str, VerificationView] = {}

    @property
    def service(self) -> MatrixService | None:
        return self.app.service

    def display_name(self, user_id: str) -> str:
        room_id = self.app.state.current_room_id
        state = self.service.room_state(room_id or "") if self.service else None
        if state is not None and state.membership_of(user_id):
            return state.member_name(user_id)
        return user_id

    # -- rooms -------------------------------------------------------------------------------

    def choose_room(self) -> None:
        from tuichat.model.space_tree import space_rooms
        from tuichat.ui.screens.room_switcher import RoomSwitcher

        app = self.app

        def chosen(room_id: str | None) -> None:
            if room_id:
                app.chat.switch_room(room_id)
            app.main.composer.focus()

        rooms = app.state.rooms.ordered()
        space_id = app.main.room_list.scoped_space
        space = app.state.rooms.get(space_id) if space_id else None
        if space_id and space is not None:  # issue 22: Ctrl+K within the chosen space
            inside = space_rooms(rooms, space_id)
            rooms = [r for r in rooms if r.room_id in inside and not r.is_space]
            app.push_screen(RoomSwitcher(rooms, safe_line(space.name)), chosen)
            return
        app.push_screen(RoomSwitcher(rooms), chosen)

    def next_space(self) -> None:
        """The next space in the room list (issue 22): Ctrl+K looks in it."""
        app = self.app
        space_id = app.main.room_list.action_next_space()
        space = app.state.rooms.get(space_id) if space_id else None
        switch = app.key_label("switch_room")
        if space is not None:
            app.main.feedback.show(safe_line(f"Space: {space.name} ({switch} looks in it)."))
        else:
            app.main.feedback.show(trusted("All rooms."))

    def answer_invite(self, summary: RoomSummary) -> None:
        from tuichat.ui.screens.invite import InviteDialog

        chat = self.app.chat

        def decided(decision: str | None) -> None:
            service = self.service
            if decision is None or service is None:
                return
            if decision == "accept":
                chat.with_progress(
                    safe_text(f"Joining {summary.name}…"), service.accept_invite(summary.room_id)
                )
            else:
                self.app.main.feedback.show(safe_text(f"Declined the invite to {summary.name}."))
                chat.run_service_call(service.decline_invite(summary.room_id))

        self.app.push_screen(InviteDialog(summary), decided)

    def new_dm(self) -> None:
        from tuichat.ui.screens.new_dm import NewDmDialog

        app, service = self.app, self.service
        if service is None:
            app.main.feedback.show("Not connected yet.", error=True)
            return

        def chosen(user_id: str | None) -> None:
            if user_id:
                app.chat.with_progress(
                    safe_text(f"Opening an encrypted DM with {user_id}…"),
                    service.create_dm([user_id]),
                )
            app.main.composer.focus()

        app.push_screen(NewDmDialog(service.lookup_profile), chosen)

    # -- members and devices -------------------------------------------------------------------

    def members(self) -> None:
        app, service = self.app, self.service
        room_id = app.state.current_room_id
        if service is None or room_id is None or service.room_state(room_id) is None:
            app.main.feedback.show("No room to list members of.", error=True)
            return
        if service.members_complete(room_id):
            self._show_members(room_id)
            return

        async def complete_first() -> None:
            # issue 25: syncs load members lazily; the list shows them all.
            await service.load_members(room_id)
            self._show_members(room_id)

        app.chat.with_progress(trusted("Loading the member list…"), complete_first())

    def _show_members(self, room_id: str) -> None:
        from tuichat.ui.screens.members import MembersDialog

        app = self.app
        state = self.service.room_state(room_id) if self.service else None
        if state is None:
            return
        members = [
            (user, state.member_name(user), state.membership_of(user) or "")
            for user in state.members(("join", "invite"))
        ]
        summary = app.state.current_summary
        title = safe_line(summary.name if summary else room_id)

        def chosen(member: tuple[str, str] | None) -> None:
            if member is not None:
                self.open_devices(*member)

        app.push_screen(MembersDialog(title, members), chosen)

    def room_settings(self) -> None:
        """The room's settings (issue 22), editable as the power levels allow."""
        from tuichat.ui.screens.room_settings import RoomSettingsDialog, SettingsView

        app, service = self.app, self.service
        room_id = app.state.current_room_id
        state = service.room_state(room_id) if service and room_id else None
        if service is None or room_id is None or state is None:
            app.main.feedback.show("Choose a room first.", error=True)
            return
        levels = service.power_levels(room_id)
        mine = levels.user_level(service.user_id)
        may = frozenset(
            what
            for what, event_type in (
                ("name", "m.room.name"),
                ("topic", "m.room.topic"),
                ("encryption", "m.room.encryption"),
                ("history", "m.room.history_visibility"),
                ("join_rules", "m.room.join_rules"),
            )
            if mine >= levels.state_level(event_type)
        )
        members = sorted(
            (
                (safe_line(user), safe_line(state.member_name(user)), levels.user_level(user))
                for user in state.members(("join", "invite"))
            ),
            key=lambda m: (-m[2], m[1].casefold()),
        )
        history = state.content("m.room.history_visibility").get("history_visibility")
        join_rule = state.content("m.room.join_rules").get("join_rule")
        view = SettingsView(
            name=state.name,
            topic=state.topic,
            encrypted=state.encrypted,
            history=history if isinstance(history, str) else "",
            join_rule=join_rule if isinstance(join_rule, str) else "",
            members=members,
            may=may,
        )

        def chosen(change: SettingsChange | None) -> None:
            if change is not None and not change.empty:
                app.run_worker(self._apply_settings(room_id, change), group="settings")
            app.main.composer.focus()

        title = safe_line(state.display_name(service.user_id))
        app.push_screen(RoomSettingsDialog(title, view), chosen)

    async def _apply_settings(self, room_id: str, change: SettingsChange) -> None:
        service = self.service
        if service is None:
            return
        if change.name is not None:
            await service.set_room_name(room_id, change.name)
        if change.topic is not None:
            await service.set_topic(room_id, change.topic)
        if change.history is not None:
            await service.set_room_setting(
                room_id,
                "m.room.history_visibility",
                {"history_visibility": change.history},
                "Who can read the history changed.",
            )
        if change.join_rule is not None:
            await service.set_room_setting(
                room_id,
                "m.room.join_rules",
                {"join_rule": change.join_rule},
                "Who can join changed.",
            )
        if change.encrypt:
            await service.enable_encryption(room_id)

    async def show_pins(self) -> None:
        """The room's pinned messages (fetched when not loaded here)."""
        from tuichat.ui.screens.pinned import PinnedDialog

        app, service = self.app, self.service
        room_id = app.state.current_room_id
        summary = app.state.current_summary
        if service is None or room_id is None or summary is None:
            return
        if not summary.pinned:
            app.main.feedback.show("No pinned messages in this room.")
            return
        loaded = {i.event_id: i for i in app.state.timeline(room_id) if i.event_id}
        pins = []
        for event_id in reversed(summary.pinned):
            item = loaded.get(event_id) or await service.fetch_event(room_id, event_id)
            pins.append((item.sender_name, item.body) if item else ("?", "(not found)"))
        app.push_screen(PinnedDialog(safe_line(summary.name), pins))

    def open_devices(self, user_id: str, display_name: str | None = None) -> None:
        from tuichat.ui.screens.devices import DevicesScreen

        name = safe_line(display_name or self.display_name(user_id))
        screen = DevicesScreen(user_id, name, self.service)
        self.app.push_screen(screen)
        screen.load()

    def devices_changed(self, user_ids: frozenset[str]) -> None:
        from tuichat.ui.screens.devices import DevicesScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, DevicesScreen) and screen.user_id in user_ids:
                screen.load()

    # -- verification --------------------------------------------------------------------------

    def start_verification(self, user_id: str, device_id: str | None) -> None:
        """A device (to-device), your own devices, or a person (in your DM)."""
        service = self.service
        if service is None:
            return
        if device_id is None and user_id != self.app.state.user_id:
            call = service.request_user_verification(user_id)
        else:
            call = service.request_verification(user_id, device_id)
        self.app.run_worker(call, group="verification", exit_on_error=False)

    def _dialog(self, transaction_id: str) -> VerificationDialog | None:
        from tuichat.ui.screens.verification import VerificationDialog

        for screen in self.app.screen_stack:
            if isinstance(screen, VerificationDialog) and screen.transaction_id == transaction_id:
                return screen
        return None

    def verification_changed(self, view: VerificationView) -> None:
        from tuichat.ui.screens.verification import VerificationDialog

        dialog = self._dialog(view.transaction_id)
        if dialog is not None:
            dialog.update_view(view)
            return
        if view.unsolicited:
            self._unsolicited(view)
            return
        opens = view.we_requested or view.phase is not Phase.CANCELLED
        if opens and view.phase is not Phase.DONE:
            name = self.display_name(view.other_user)
            self.app.push_screen(VerificationDialog(view, name, self.service))

    def _unsolicited(self, view: VerificationView) -> None:
        """Kept for /verifications with a notice, never a dialog by itself."""
        from tuichat.ui.screens.verification import unsolicited_notice

        if view.phase in (Phase.DONE, Phase.CANCELLED):
            self.pending_verifications.pop(view.transaction_id, None)
            return
        pending = self.pending_verifications
        if view.transaction_id in pending:
            pending[view.transaction_id] = view
            return
        pending[view.transaction_id] = view
        while len(pending) > MAX_PENDING_VERIFICATIONS:  # a stranger's flood
            pending.pop(next(iter(pending)))
        if len(pending) == 1:
            text = safe_line(unsolicited_notice(view, self.display_name(view.other_user)))
            self.app.notify(text, title="Verification request", timeout=20, markup=False)
        else:
            # One toast, not one per request: anyone can send requests.
            text = safe_line(
                f"{len(pending)} verification requests are waiting; /verifications opens them."
            )
        self.app.main.feedback.show(text)

    def open_pending_verification(self) -> None:
        """Open the oldest unsolicited request still waiting (/verifications)."""
        from tuichat.ui.screens.verification import VerificationDialog

        if not self.pending_verifications:
            self.app.main.feedback.show("No verification request is waiting.")
            return
        transaction_id = next(iter(self.pending_verifications))
        view = self.pending_verifications.pop(transaction_id)
        name = self.display_name(view.other_user)
        self.app.push_screen(VerificationDialog(view, name, self.service))

    # -- recovery ------------------------------------------------------------------------------

    def open_recovery(self) -> None:
        """The recovery dialog, for the account as it is (restore, or set up)."""
        self.app.run_worker(self._open_recovery(), group="recovery", exit_on_error=False)

    async def _open_recovery(self) -> None:
        from tuichat.ui.screens.recovery import RecoveryDialog

        service, feedback = self.service, self.app.main.feedback
        if service is None:
            feedback.show("Not connected yet.", error=True)
            return
        status = await service.recovery_status()
        if isinstance(status, Failed):
            feedback.show(safe_text(f"Could not check recovery: {status.message}"), error=True)
            return
        count = status.backup.count if status.backup else 0
        has_storage = status.has_secret_storage
        self.app.push_screen(
            RecoveryDialog(service, has_secret_storage=has_storage, backup_count=count)
        )

    def recovery_offered(self, count: int) -> None:
        from tuichat.ui.screens.recovery import RecoveryDialog

        self.app.push_screen(
            RecoveryDialog(self.service, has_secret_storage=True, backup_count=count)
        )
