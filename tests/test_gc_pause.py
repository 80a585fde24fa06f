"""The garbage collector's pause around a sync or a large parse."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tuichat.matrix.transport import fastjson
from tuichat.matrix.transport.gc_pause import GcPause


@pytest.fixture
def collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if not was_enabled:
        gc.disable()


@pytest.mark.usefixtures("collector")
def test_paused_in_the_block_and_running_after() -> None:
    with GcPause():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), GcPause():
        raise ValueError
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_survivors_frozen_only_when_asked() -> None:
    frozen = gc.get_freeze_count()
    with GcPause():
        kept = [[] for _ in range(100)]
    assert gc.get_freeze_count() == frozen
    with GcPause() as pause:
        kept += [[] for _ in range(100)]
        pause.freeze_after = True
    assert gc.get_freeze_count() > frozen
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_a_collector_switched_off_stays_off() -> None:
    gc.disable()
    frozen = gc.get_freeze_count()
    with GcPause() as pause:
        pause.freeze_after = True
    assert not gc.isenabled()
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("collector")
def test_fastjson_resumes_the_collector_after_a_large_body() -> None:
    body = b"[" + b",".join(b'{"a":1}' for _ in range(60_000)) + b"]"
    assert len(fastjson.loads(body)) == 60_000
    assert gc.isenabled()
