"""Suite-wide settings."""

from __future__ import annotations

import atexit
import os
import pathlib
import sys
from typing import Dict, Iterator, List

# Some environments set PYTHONDONTWRITEBYTECODE: then every test module is re-compiled by pytest's
# assertion rewriting on every run, and every subprocess a test starts (examples, the CLI, README
# blocks, fleet workers) compiles the whole package again. Caching bytecode here (in __pycache__,
# which git ignores) makes the suite several seconds faster and changes nothing it checks. Set
# before this module imports the package, so that the package's own bytecode is cached too.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import pytest  # noqa: E402
import requests  # noqa: E402

from amplitude_experiment.testing import ManualClock  # noqa: E402


def _end_worker_now(pid: int) -> None:
    """Skip interpreter teardown in a pytest-xdist worker: its results are already with the controller.

    Tearing down a worker's interpreter (GC of every module and object the suite created) takes
    ~0.4 s of CPU, four workers at once at the very end of a run, which the controller waits for.
    Registered as the suite starts, this runs after the atexit hooks registered by tests (clients
    left unstopped still flush); coverage, started before, saves its data through the ``_exit``
    patch in pyproject's coverage config.
    """
    if os.getpid() != pid:
        return  # a process forked by a test exits as it would without this hook
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_end_worker_now, os.getpid())


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):  # the xdist controller
        _rewrite_test_modules_once(config)


def _rewrite_test_modules_once(config: pytest.Config) -> None:
    """Cache pytest's assert-rewritten test modules before the workers start (a fresh checkout has none).

    Otherwise each of the four workers rewrites and compiles every test module at the same time
    while collecting (~1 s of CPU each). This uses pytest's internal rewrite cache functions; if
    they change, nothing is done here and the workers rewrite the modules as usual.
    """
    try:
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        for path in sorted(pathlib.Path(__file__).parent.rglob("*.py")):
            if not (path.name.startswith("test_") or path.name == "conftest.py"):
                continue
            cache_dir = rewrite.get_cache_dir(path)
            pyc = cache_dir / (path.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(path, pyc, state.trace) is None and rewrite.try_makedirs(cache_dir):
                source_hash, code = rewrite._rewrite_test(path, config)
                rewrite._write_pyc(state, code, source_hash, pyc)
    except Exception:  # noqa: BLE001 - only an optimisation
        return


#: Test files whose tests take long in all (real processes, subprocesses, real-time waits): about
#: how many seconds each takes on a busy 2-core machine. Files listed together share a lane
#: (the multi-process fleet tests share one fork server per worker). The other files fill the lanes up.
SLOW = (
    (("tests/redis/test_fleet_processes.py", "tests/redis/test_claims.py", "tests/redis/test_multiprocess.py"), 2.5),
    (("tests/test_readme.py",), 2.3),
    (("tests/events/test_sender_counts.py",), 2.1),
    (("tests/examples/test_gunicorn_preload.py",), 2.0),
    (("tests/redis/test_client.py",), 2.0),
    (("tests/test_cli.py",), 2.0),
    (("tests/local/test_tracking.py",), 1.5),
    (("tests/redis/test_faults.py",), 1.3),
    (("tests/local/test_delivery.py",), 1.1),
    (("tests/examples/test_django_app.py",), 1.0),
    (("tests/local/test_logging.py",), 1.0),
    (("tests/evaluation/test_properties.py",), 1.0),
    (("tests/redis/test_cohort_sharing.py",), 1.0),
    (("tests/flags/test_stream.py",), 0.9),
    (("tests/events/test_sender.py",), 0.9),
    (("tests/examples/test_worker.py",), 0.9),
    (("tests/testing/test_server.py",), 0.8),
    (("tests/hostile/test_evaluation.py",), 0.7),
    (("tests/hostile/test_flags.py",), 0.7),
    (("tests/redis/test_flags.py",), 0.7),
    (("tests/test_public_api.py",), 0.7),
    (("tests/examples/test_remote_example.py",), 0.6),
    (("tests/redis/test_lease.py",), 0.5),
    (("tests/evaluation/test_compiler_dependencies.py",), 0.5),
    (("tests/examples/test_exposure_tracking.py",), 0.5),
    (("tests/test_examples.py",), 0.4),
    (("tests/examples/test_fastapi_app.py",), 0.4),
)


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Deal the long test files out to the workers first, so that none is left with one at the end.

    With ``--dist worksteal`` (pyproject's addopts) worker k starts with the k-th quarter of the
    collection and, once idle, takes the second half of the longest remaining queue. So the items
    are laid out as one lane per worker: its share of the long files (balanced by their weights,
    longest first) followed by short tests up to the lane's length. Each worker begins with long
    tests and the work handed around at the end is short. Without xdist: the long files first.
    """
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    by_file: Dict[str, List[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    lanes: List[List[pytest.Item]] = [[] for _ in range(workers)]
    weights = [0.0] * workers
    for files, seconds in SLOW:  # longest first, each to the lightest lane so far
        lane = weights.index(min(weights))
        for path in files:
            lanes[lane].extend(by_file.pop(path, []))
        weights[lane] += seconds
    short = [item for file_items in by_file.values() for item in file_items]
    # worksteal's first split: worker k gets len(remaining) // (workers - k) of the items.
    remaining = len(items)
    for k, lane in enumerate(lanes):
        size = remaining // (workers - k)
        remaining -= size
        take = max(0, size - len(lane))
        lane.extend(short[:take])
        del short[:take]
    items[:] = [item for lane in lanes for item in lane] + short


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A fresh HTTP session, closed after the test."""
    with requests.Session() as fresh:
        yield fresh


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test advances it."""
    return ManualClock()
