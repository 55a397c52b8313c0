"""Our side of the black-box comparison with the official client (issue 11, "done when").

``scripts/compare_remote.py`` runs one scenario under the official SDK's venv and under ours
against a recording loopback server and diffs the requests and outcomes; its output for our
side is committed as ``fixtures/compare_remote.json``. This test replays the scenario with our
package only (no reference SDK needed) and checks every step against the fixture. Regenerate
with ``python scripts/compare_remote.py --write-fixture tests/remote/fixtures/compare_remote.json``.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
from types import ModuleType
from typing import Any, Dict, Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "compare_remote.json").read_text("utf-8"))


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_remote", ROOT / "scripts" / "compare_remote.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


@pytest.fixture(scope="module")
def our_side() -> Iterator[Dict[str, Any]]:
    server = SCRIPT.RecordingServer()
    try:
        outcomes = SCRIPT.run_scenario(server.url)
        yield SCRIPT.side_record(outcomes, server.requests)
    finally:
        server.close()


def test_fixture_covers_every_step_and_documents_each_divergence() -> None:
    assert sorted(FIXTURE["steps"]) == sorted(SCRIPT.STEPS)
    assert FIXTURE["divergences"] == SCRIPT.DIVERGES
    for name in SCRIPT.DIVERGES:
        # The reference's recorded behaviour differs from ours in exactly these steps.
        assert FIXTURE["steps"][name]["reference"] != FIXTURE["steps"][name]["ours"]


@pytest.mark.parametrize("step", list(SCRIPT.STEPS))
def test_step_matches_the_compared_recording(step: str, our_side: Dict[str, Any]) -> None:
    assert our_side[step] == FIXTURE["steps"][step]["ours"]


def test_retry_counts_on_5xx() -> None:
    steps = FIXTURE["steps"]
    # 1 + fetch_retries requests when every answer fails; the first success ends the retries.
    assert len(steps["5xx-exhausted"]["ours"]["requests"]) == 3
    assert steps["5xx-exhausted"]["ours"]["outcome"] == {"raised": {"type": "FetchException", "status_code": 504}}
    assert len(steps["5xx-then-ok"]["ours"]["requests"]) == 3
    assert len(steps["5xx-no-retries"]["ours"]["requests"]) == 1
    assert steps["5xx-no-retries"]["ours"]["outcome"] == {"result": {}}
