"""What a digit key on a selected poll votes for: the poll's answers after
pressing answer N, given the viewer's counted vote. A single-choice poll
takes answer N; a multi-choice poll toggles N in the viewer's selection (as
`/vote` with the new set would), refused beyond its `max_selections`.

Plain Python; the UI sends the answer ids and shows the sentence."""

from __future__ import annotations

from dataclasses import dataclass

from tuichat.model.polls import PollResults, PollStart


@dataclass(frozen=True)
class PollChoice:
    answers: tuple[str, ...] | None  # the answer ids to send; None: nothing to send
    message: str  # what to tell the user (plain text: answers are cleaned already)
    error: bool = False


def choose(poll: PollStart, results: PollResults, number: int) -> PollChoice:
    """The vote after pressing `number` (1-based) on `poll`."""
    if results.ended:
        return PollChoice(None, "This poll has ended.", error=True)
    if not 1 <= number <= len(poll.answers):
        return PollChoice(None, f"This poll has {len(poll.answers)} answers.", error=True)
    answer = poll.answers[number - 1]
    if poll.max_selections <= 1:
        return PollChoice((answer.answer_id,), f"Voted: {answer.text}.")
    mine = [a.answer_id for a in poll.answers if a.answer_id in results.mine]
    if answer.answer_id in mine:
        mine.remove(answer.answer_id)
    elif len(mine) >= poll.max_selections:
        return PollChoice(
            None,
            f"This poll takes at most {poll.max_selections} answers: "
            "press one of yours to take it back first.",
            error=True,
        )
    else:
        mine.append(answer.answer_id)
    chosen = [a for a in poll.answers if a.answer_id in mine]
    if not chosen:
        return PollChoice((), "Vote withdrawn.")
    return PollChoice(
        tuple(a.answer_id for a in chosen), f"Voted: {', '.join(a.text for a in chosen)}."
    )
