"""Search (issue 24): `/search TERMS [--all]` and its key open the Search
view; Enter on a result goes to it in its room. The room's history is
loaded back (cache first, then the server) until the message is in the
timeline, which then selects it with its matched words marked; a message
further back than that is shown with the messages around it, from the
server's /context."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tuichat.model.sanitize import trusted
from tuichat.model.search_query import SearchCursor, SearchHit, SearchPage, SearchQuery
from tuichat.ui.screens.search import SearchChoice, SearchContextScreen, SearchScreen

if TYPE_CHECKING:
    from tuichat.ui.app import TuichatApp

# History pages (of 50) loaded back to reach a result, at most, before the
# result is shown from /context instead.
MAX_PAGES = 40
PAGE_WAIT = 10.0  # seconds a page may take to arrive


class Searching:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app

    def open(self, text: str = "", all_rooms: bool = False) -> None:
        app = self.app
        if isinstance(app.screen, SearchScreen):
            app.screen.query_one("#search-input").focus()  # Ctrl+F again: back to the query
            return
        service = app.service
        if service is None:
            app.main.feedback.show(trusted("Not connected yet: search waits for the account."))
            return
        room_id = app.state.current_room_id

        async def searcher(query: SearchQuery, cursor: SearchCursor | None) -> SearchPage:
            return await service.search(query, room_id, cursor)

        screen = SearchScreen(
            searcher,
            self.room_name,
            lambda: app.state.search_progress.text(),
            text=text,
            all_rooms=all_rooms or room_id is None or "--all" in text.split(),
        )
        app.push_screen(screen, self._chosen)

    def room_name(self, room_id: str) -> str:
        summary = self.app.state.rooms.get(room_id)
        return summary.name if summary is not None else room_id

    def _chosen(self, choice: SearchChoice | None) -> None:
        if choice is None:
            self.app.main.composer.focus()
            return
        self.app.run_worker(
            self.go_to(choice.hit, choice.query), group="search-jump", exit_on_error=False
        )

    def _show(self, hit: SearchHit, query: SearchQuery) -> bool:
        view = self.app.main.timeline
        if self.app.state.current_room_id != hit.room_id or not view.select_key(hit.event_id):
            return False
        view.mark_match(hit.event_id, query)
        view.focus()
        return True

    async def go_to(self, hit: SearchHit, query: SearchQuery) -> None:
        """The result in its room's timeline, history loaded back to it."""
        app, service = self.app, self.app.service
        assert service is not None
        app.chat.switch_room(hit.room_id)
        timeline = app.state.timeline(hit.room_id)
        for _page in range(MAX_PAGES):
            if self._show(hit, query):
                return
            if not timeline.has_more_history or app.state.current_room_id != hit.room_id:
                break
            oldest = next((item.event_id for item in timeline if item.event_id), None)
            size = len(timeline)
            await service.load_older(hit.room_id, oldest)
            # The page is applied from the App's inbox: wait for it.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + PAGE_WAIT
            while len(timeline) == size and timeline.has_more_history:
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0)
            if len(timeline) == size:
                break  # no page came (a network failure was told): the context instead
        if self._show(hit, query):
            return
        items = await service.event_context(hit.room_id, hit.event_id)
        if not any(item.event_id == hit.event_id for item in items):
            app.main.feedback.show(trusted("That message could not be loaded."), error=True)
            return
        app.push_screen(
            SearchContextScreen(self.room_name(hit.room_id), items, hit.event_id, query)
        )
