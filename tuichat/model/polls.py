"""Polls (MSC3381): a poll's question and answers, the votes counted from
its responses, and the text the timeline shows for it.

Plain data and pure functions, tested without a terminal. The rules are the
MSC's: each person's newest response counts (by timestamp), responses after
the poll ended do not, a response with more answers than the poll allows
keeps the first ones, and a response naming no known answer withdraws that
person's vote ("spoiled"). An undisclosed poll shows its counts only once
it has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNSTABLE_PREFIX = "org.matrix.msc3381."
# The answers a poll may have, and the length of one answer's text: remote
# input, bounded.
MAX_ANSWERS = 20


@dataclass(frozen=True, slots=True)
class PollAnswer:
    answer_id: str
    text: str  # sanitised


@dataclass(frozen=True, slots=True)
class PollStart:
    """What a poll asks: from its start event."""

    question: str  # sanitised
    answers: tuple[PollAnswer, ...]
    disclosed: bool = True
    max_selections: int = 1
    unstable: bool = True  # answered with the event names it was started with


@dataclass(frozen=True, slots=True)
class PollResponse:
    sender: str
    timestamp: int
    answers: tuple[str, ...]  # answer ids as sent (checked when counted)


@dataclass(frozen=True, slots=True)
class PollResults:
    counts: tuple[int, ...]  # per answer, in the poll's order
    voters: int
    mine: tuple[str, ...]  # the answer ids of the viewer's counted vote
    ended: bool = False


@dataclass
class PollVotes:
    """Every response and the end seen for one poll."""

    responses: dict[str, PollResponse] = field(default_factory=dict)  # by event id
    ended_at: int | None = None


def tally(
    poll: PollStart, responses: list[PollResponse], viewer: str, ended_at: int | None = None
) -> PollResults:
    """Count the votes as the MSC says."""
    known = [answer.answer_id for answer in poll.answers]
    latest: dict[str, PollResponse] = {}
    for response in responses:
        if ended_at is not None and response.timestamp > ended_at:
            continue
        current = latest.get(response.sender)
        if current is None or response.timestamp >= current.timestamp:
            latest[response.sender] = response
    counts = dict.fromkeys(known, 0)
    voters = 0
    mine: tuple[str, ...] = ()
    for sender, response in latest.items():
        chosen = tuple(dict.fromkeys(a for a in response.answers[: poll.max_selections]))
        valid = tuple(a for a in chosen if a in counts)
        if not valid or len(valid) != len(chosen):
            continue  # spoiled: no vote
        voters += 1
        for answer_id in valid:
            counts[answer_id] += 1
        if sender == viewer:
            mine = valid
    return PollResults(tuple(counts[a] for a in known), voters, mine, ended_at is not None)


def poll_text(poll: PollStart, results: PollResults) -> str:
    """The lines the timeline shows: the question, each answer numbered (the
    number `/vote` takes) with its count, the viewer's choice marked."""
    show_counts = poll.disclosed or results.ended
    heading = "Poll ended" if results.ended else "Poll"
    lines = [f"{heading}: {poll.question}"]
    top = max(results.counts, default=0)
    for number, (answer, count) in enumerate(zip(poll.answers, results.counts, strict=True), 1):
        mark = "●" if answer.answer_id in results.mine else "○"
        line = f"  {mark} {number}. {answer.text}"
        if show_counts:
            line += f" — {count} vote{'' if count == 1 else 's'}"
            if results.ended and count == top and top > 0:
                line += " (winner)"
        lines.append(line)
    votes = f"{results.voters} vote{'' if results.voters == 1 else 's'}"
    if results.ended:
        lines.append(f"  Final result: {votes}")
    elif show_counts:
        lines.append(f"  {votes} · /vote N to vote")
    else:
        lines.append(f"  {votes} · results are shown when the poll ends · /vote N to vote")
    return "\n".join(lines)


def response_content(
    poll: PollStart, poll_event_id: str, answer_ids: list[str]
) -> tuple[str, dict[str, Any]]:
    """The event type and content of a vote for `answer_ids`, in the poll's
    own namespace (Element's polls are unstable)."""
    relates = {"rel_type": "m.reference", "event_id": poll_event_id}
    if poll.unstable:
        return (
            f"{UNSTABLE_PREFIX}poll.response",
            {
                f"{UNSTABLE_PREFIX}poll.response": {"answers": answer_ids},
                "m.relates_to": relates,
            },
        )
    return ("m.poll.response", {"m.selections": answer_ids, "m.relates_to": relates})


class PollBook:
    """The votes and ends seen for the polls of one timeline, by poll event
    id; a timeline asks it for a poll item's text."""

    def __init__(self) -> None:
        self._votes: dict[str, PollVotes] = {}
        self._ends: dict[str, list[tuple[str, int]]] = {}  # poll -> [(sender, ts)]
        self._response_poll: dict[str, str] = {}  # response event id -> poll

    def __bool__(self) -> bool:
        """Whether any vote or end was seen (an empty book need not be kept)."""
        return bool(self._votes or self._ends or self._response_poll)

    def add_response(
        self, poll_id: str, event_id: str, sender: str, timestamp: int, answers: tuple[str, ...]
    ) -> None:
        votes = self._votes.setdefault(poll_id, PollVotes())
        votes.responses[event_id] = PollResponse(sender, timestamp, answers)
        self._response_poll[event_id] = poll_id

    def add_end(self, poll_id: str, sender: str, timestamp: int) -> None:
        self._ends.setdefault(poll_id, []).append((sender, timestamp))

    def add(
        self,
        poll_id: str,
        event_id: str,
        sender: str,
        timestamp: int,
        answers: tuple[str, ...] | None,
    ) -> None:
        """A response to poll `poll_id` with `answers`, or its end (None)."""
        if answers is None:
            self.add_end(poll_id, sender, timestamp)
        else:
            self.add_response(poll_id, event_id, sender, timestamp, answers)

    def forget_response(self, event_id: str) -> str | None:
        """A redacted response: no longer counted; returns its poll."""
        poll_id = self._response_poll.pop(event_id, None)
        if poll_id is not None:
            self._votes.get(poll_id, PollVotes()).responses.pop(event_id, None)
        return poll_id

    def text(self, poll_id: str, poll: PollStart, creator: str, viewer: str) -> str:
        """The poll's lines with its counts; only its creator can end it."""
        return poll_text(poll, self.results(poll_id, poll, creator, viewer))

    def results(self, poll_id: str, poll: PollStart, creator: str, viewer: str) -> PollResults:
        ends = [ts for sender, ts in self._ends.get(poll_id, ()) if sender == creator]
        votes = self._votes.get(poll_id)
        responses = list(votes.responses.values()) if votes else []
        return tally(poll, responses, viewer, min(ends) if ends else None)
