"""Conformance with the official SDK (``amplitude-experiment==1.13.0``) as recorded in a fixture.

The fixture is produced by ``scripts/generate_conformance.py`` (which runs the reference as a
black box). For every case we evaluate the same flags for the same user with our engine and
require exactly the same variants: same flag keys (same order when ``ordered``), and for each
flag the same ``key``, ``value``, ``payload`` and ``metadata`` (compared as canonical JSON, so
``1``, ``1.0`` and ``True`` are told apart).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "conformance.json"
MAX_REPORTED = 5

with FIXTURE.open(encoding="utf-8") as _file:
    DOCUMENT: Dict[str, Any] = json.load(_file)
SUITES: List[Dict[str, Any]] = DOCUMENT["suites"]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def _as_dict(variant: Any) -> Dict[str, Any]:
    return {"key": variant.key, "value": variant.value, "payload": variant.payload,
            "metadata": variant.metadata}


def _mismatch(case: Dict[str, Any], actual: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """Why ``actual`` differs from the case's expectation, or ``None`` if it does not."""
    expected = case["expected"]
    if set(actual) != set(expected):
        return (f"flag keys differ: missing {sorted(set(expected) - set(actual))}, "
                f"unexpected {sorted(set(actual) - set(expected))}")
    if case["ordered"] and list(actual) != list(expected):
        return f"order differs:\n    expected {list(expected)}\n    actual   {list(actual)}"
    for key, want in expected.items():
        if _canonical(actual[key]) != _canonical(want):
            return f"flag {key!r}:\n    expected {_canonical(want)}\n    actual   {_canonical(actual[key])}"
    return None


def test_fixture_is_from_the_reference() -> None:
    assert DOCUMENT["reference"] == "amplitude-experiment==1.13.0"
    assert sum(len(s["cases"]) for s in SUITES) >= 2000
    assert any(s["name"] == "bucketing" for s in SUITES)


def test_list_element_suites_cover_every_operator_and_name_their_corrections() -> None:
    # issue 10 point 3: every operator against lists of booleans, numbers, nulls, duplicates,
    # mixed case, padded strings and empty lists; a case names the design.md §4 correction
    # (a, b or e, see scripts/generate_conformance.py) applied to each flag it corrects.
    suites = [s for s in SUITES if s["name"].startswith("list-elements-")]
    assert len(suites) == 2
    for suite in suites:
        ops = {flag["segments"][0]["conditions"][0][0]["op"] for flag in suite["flags"]}
        assert len(ops) == 20
        keys = {flag["key"] for flag in suite["flags"]}
        letters = [letter for case in suite["cases"] for key, letter in case.get("corrections", {}).items()
                   if key in keys]
        assert set(letters) == {"a", "b", "e"}
        assert len(letters) == sum(len(case.get("corrections", {})) for case in suite["cases"])


@pytest.mark.parametrize("suite", SUITES, ids=[s["name"] for s in SUITES])
def test_matches_reference(suite: Dict[str, Any]) -> None:
    compiled = compile_flags(copy.deepcopy(suite["flags"]))
    failures: List[str] = []
    for index, case in enumerate(suite["cases"]):
        user = User(**copy.deepcopy(case["user"]))
        flag_keys = case["flag_keys"]
        try:
            result = evaluate(compiled, user, list(flag_keys) if flag_keys is not None else None)
            problem = _mismatch(case, {key: _as_dict(variant) for key, variant in result.items()})
        except Exception as exc:  # report it with the case, like any other mismatch
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            where = f"case {index} (user={_canonical(case['user'])}, flag_keys={flag_keys})"
            failures.append(f"{where}: {problem}")
    if failures:
        shown = "\n\n".join(failures[:MAX_REPORTED])
        summary = f"{len(failures)} of {len(suite['cases'])} cases differ from the reference"
        pytest.fail(f"{summary}; first ones:\n\n{shown}", pytrace=False)
