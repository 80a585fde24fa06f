"""How the service's parts are built and connected: one function that says
who gets what. Importing it imports nio; `MatrixService` does so when a part
is first needed (at the latest when it opens the store)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.dehydrated_device import DehydratedDevice
from tuichat.matrix.service.history import History, TimelineGaps
from tuichat.matrix.service.member_lists import MemberLists
from tuichat.matrix.service.message_search import MessageSearch
from tuichat.matrix.service.moderation import RoomModeration
from tuichat.matrix.service.opening import AccountOpener
from tuichat.matrix.service.push_settings import PushSettings
from tuichat.matrix.service.read_state import ReadState
from tuichat.matrix.service.room_admin import RoomAdmin
from tuichat.matrix.service.room_keys import RoomKeys
from tuichat.matrix.service.room_threads import RoomThreads
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.service.send_queue import SendQueue
from tuichat.matrix.service.spaces import Spaces
from tuichat.matrix.service.sync_loop import SyncLoop
from tuichat.matrix.service.token_recovery import TokenRecovery
from tuichat.matrix.service.transfers import Transfers
from tuichat.matrix.service.trust import DeviceTrust
from tuichat.matrix.service.user_safety import UserSafety
from tuichat.matrix.storage.outbox import Outbox


@dataclass(frozen=True)
class Parts:
    """The service's collaborators, one per job."""

    views: RoomViews
    tokens: TokenRecovery
    opener: AccountOpener
    syncing: SyncLoop
    sending: SendQueue
    history: History
    read_state: ReadState
    rooms: RoomAdmin
    trust: DeviceTrust
    keys: RoomKeys
    transfers: Transfers
    push: PushSettings  # notifications (issue 23)
    threads: RoomThreads  # issue 21
    # issue 22: room management
    moderation: RoomModeration
    spaces: Spaces
    safety: UserSafety
    dehydration: DehydratedDevice  # issue 26
    members: MemberLists  # issue 25: lazily loaded members, fetched where needed
    search: MessageSearch  # issue 24


def build_parts(
    context: AccountContext,
    outbox: Outbox,
    *,
    stop_syncing: Callable[[], None],
    sync_timeout_ms: int,
    key_request_grace: float | None,
    key_request_backoff: tuple[float, ...] | None,
) -> Parts:
    views = RoomViews(context)
    tokens = TokenRecovery(context, stop_syncing)
    trust = DeviceTrust(context, views)
    keys = RoomKeys(context, views, trust)
    # Dehydrated devices (issue 26): made and read around recovery, replaced in upkeep.
    keys.dehydration = dehydration = DehydratedDevice(context, views)
    read_state = ReadState(context)
    gaps = TimelineGaps()
    members = MemberLists(context, gaps, views)
    sending = SendQueue(context, outbox, tokens, members)
    push = PushSettings(context)
    rooms = RoomAdmin(context, views)
    moderation = RoomModeration(context, rooms)
    return Parts(
        views=views,
        tokens=tokens,
        opener=AccountOpener(
            context,
            views=views,
            tokens=tokens,
            on_verification=trust.report_verification,
            send_room_event=sending.send_room_event,
            key_request_grace=key_request_grace,
            key_request_backoff=key_request_backoff,
        ),
        syncing=SyncLoop(
            context,
            gaps=gaps,
            views=views,
            read_state=read_state,
            trust=trust,
            keys=keys,
            tokens=tokens,
            push=push,
            timeout_ms=sync_timeout_ms,
        ),
        sending=sending,
        history=History(context, gaps),
        read_state=read_state,
        rooms=rooms,
        trust=trust,
        keys=keys,
        transfers=Transfers(context, sending),
        push=push,
        threads=RoomThreads(context, sending),
        moderation=moderation,
        spaces=Spaces(context, moderation),
        safety=UserSafety(context),
        dehydration=dehydration,
        members=members,
        search=MessageSearch(context),
    )
