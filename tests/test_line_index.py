"""The timeline's line index agrees with a plain list of heights under any
sequence of measuring, forgetting, appending, truncating and prepending."""

from __future__ import annotations

import random

from tuichat.ui.widgets.line_index import LineIndex


def test_line_index_matches_a_list_of_heights_including_zero_under_random_changes() -> None:
    rng = random.Random(7)
    for _ in range(150):
        heights: list[int | None] = [None] * rng.randint(0, 40)
        index = LineIndex(len(heights))
        for _ in range(60):
            roll = rng.random()
            if roll < 0.4 and heights:
                # Zero: a hidden item (a condensed membership change).
                i, value = rng.randrange(len(heights)), rng.randint(0, 5)
                index.set_height(i, value)
                heights[i] = value
            elif roll < 0.5 and heights:
                i = rng.randrange(len(heights))
                index.forget(i)
                heights[i] = None
            elif roll < 0.6:
                keep = rng.randint(0, len(heights))
                index.truncate(keep)
                heights = heights[:keep]
            elif roll < 0.75:
                count = rng.randint(0, 5)
                index.extend(count)
                heights += [None] * count
            elif roll < 0.85:
                count = rng.randint(0, 5)
                index.insert_front(count)
                heights = [None] * count + heights
            effective = [1 if h is None else h for h in heights]
            assert index.total == sum(effective)
            lines = [(i, o) for i, h in enumerate(effective) for o in range(h)]
            for line in range(-1, len(lines) + 1):
                expected = lines[line] if 0 <= line < len(lines) else None
                assert index.locate(line) == expected
            for i in range(len(heights)):
                assert index.line_of(i) == sum(effective[:i])


def test_a_new_index_costs_eight_bytes_per_item() -> None:
    index = LineIndex(100_000)
    size = index._heights.itemsize * len(index._heights) + index._tree.itemsize * len(index._tree)
    assert size <= 8 * 100_001
    assert index.total == 100_000
    assert index.locate(99_999) == (99_999, 0)
