"""Real processes: a SIGKILLed leader is replaced within the lease; a fork never inherits one (issue 14 pts 4, 5)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Dict

from ._workers import lease_worker
from .conftest import process_context

DEPLOYMENT = "server-deploymentKEY0001"
LEASE_MILLIS = 300


def test_sigkilled_leader_is_replaced_within_the_lease_time(redis_server, prefix):
    ctx = process_context()
    out = ctx.Queue()
    workers: Dict[str, multiprocessing.process.BaseProcess] = {
        name: ctx.Process(target=lease_worker, args=(redis_server.url, prefix, DEPLOYMENT, LEASE_MILLIS, name, out),
                          daemon=True)
        for name in ("w1", "w2", "w3")}
    try:
        for worker in workers.values():
            worker.start()
        events = []
        while sum(1 for _, what in events if what == "ready") < 3 or not any(w == "lead" for _, w in events):
            events.append(out.get(timeout=30))
        leaders = [name for name, what in events if what == "lead"]
        assert len(leaders) == 1
        first = leaders[0]
        killed_at = time.monotonic()
        os.kill(workers[first].pid, signal.SIGKILL)  # type: ignore[arg-type]
        name, what = out.get(timeout=10)
        replaced_after = time.monotonic() - killed_at
        assert what == "lead" and name != first
        # Within the lease (plus the followers' renewal cadence and scheduling slack on 2 shared cores).
        assert replaced_after < LEASE_MILLIS / 1000 + 0.7
        # Exactly one new leader: the other survivor does not also report leading.
        assert out.empty() or out.get(timeout=0.5)[1] != "lead"
    finally:
        for worker in workers.values():
            if worker.is_alive():
                worker.kill()
            worker.join(10)


def _child_try_lead(source, out) -> None:  # runs in a forked child
    out.put((source.try_lead(), source.lease.token))


def test_a_forked_child_does_not_inherit_its_parents_lease(make_fleet):
    source = make_fleet().flags(DEPLOYMENT)
    assert source.try_lead()
    parent_token = source.lease.token
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_try_lead, args=(source, out))
    child.start()
    leads, token = out.get(timeout=10)
    child.join(10)
    assert child.exitcode == 0
    assert leads is False and token != parent_token
    assert source.try_lead() is True  # the parent still holds it
