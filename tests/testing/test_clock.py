"""ManualClock: time moves only through advance(); waiters wake exactly at their deadlines."""

from __future__ import annotations

import threading
from typing import Iterator, List, Optional

import pytest

from amplitude_experiment.testing import ManualClock


class Sleeper:
    """A thread that waits on the clock ``rounds`` times for ``seconds`` each, recording clock readings."""

    def __init__(self, clock: ManualClock, seconds: Optional[float], rounds: int = 1) -> None:
        self.clock = clock
        self.stop = threading.Event()
        self.woke: List[float] = []
        self.results: List[bool] = []
        self._thread = threading.Thread(target=self._run, args=(seconds, rounds), daemon=True)
        self._thread.start()

    def _run(self, seconds: Optional[float], rounds: int) -> None:
        for _ in range(rounds):
            self.results.append(self.clock.wait(self.stop, seconds))
            self.woke.append(self.clock.monotonic())

    def join(self) -> None:
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    yield ManualClock(start=100.0, epoch=1_000_000.0)


def test_readings_move_only_when_advanced(clock: ManualClock) -> None:
    assert (clock.monotonic(), clock.time()) == (100.0, 1_000_000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (102.5, 1_000_002.5)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_waiter_wakes_at_its_deadline_not_before(clock: ManualClock) -> None:
    sleeper = Sleeper(clock, 10.0)
    assert clock.wait_for_sleepers(1) and clock.sleepers == 1
    assert clock.next_deadline() == 10.0
    clock.advance(9.0)  # returns at once: nobody's deadline has passed
    assert clock.sleepers == 1 and sleeper.woke == []
    clock.advance(1.0)  # returns once the waiter has woken
    sleeper.join()
    assert (sleeper.woke, sleeper.results, clock.sleepers) == ([110.0], [False], 0)


def test_setting_the_event_ends_a_wait_without_advancing(clock: ManualClock) -> None:
    sleeper = Sleeper(clock, None)  # no timeout: only the event ends it
    assert clock.wait_for_sleepers(1)
    assert clock.next_deadline() is None
    sleeper.stop.set()
    sleeper.join()
    assert (sleeper.woke, sleeper.results) == ([100.0], [True])


def test_wait_for_sleepers_gives_up_after_its_real_timeout(clock: ManualClock) -> None:
    assert not clock.wait_for_sleepers(1, timeout=0.01)


def test_run_until_idle_advances_deadline_by_deadline_up_to_the_limit(clock: ManualClock) -> None:
    sleeper = Sleeper(clock, 3.0, rounds=5)  # due at 103, 106, 109, 112, 115
    clock.run_until_idle(limit=10.0)
    # Three deadlines fit in 10 s; the fourth (12 s in) does not, and the clock stops at the third.
    assert sleeper.woke == [103.0, 106.0, 109.0]
    assert clock.monotonic() == 109.0 and clock.next_deadline() == 3.0
    clock.run_until_idle(limit=6.0)  # exactly the last two: it stops once the limit is used up
    sleeper.join()
    assert sleeper.woke == [103.0, 106.0, 109.0, 112.0, 115.0]
    assert clock.monotonic() == 115.0


def test_run_until_idle_returns_when_nobody_waits_with_a_deadline(clock: ManualClock) -> None:
    clock.run_until_idle(timeout=0.01)  # nobody waits at all
    sleeper = Sleeper(clock, None)
    clock.run_until_idle()  # a waiter without a deadline: nothing to advance to
    assert clock.monotonic() == 100.0
    sleeper.stop.set()
    sleeper.join()
