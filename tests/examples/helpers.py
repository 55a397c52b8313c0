"""What the examples' smoke tests share: the flag the stand-in serves, expected results, helpers."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
from types import ModuleType
from typing import Dict, List, Tuple

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.testing import AmplitudeStandIn

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

FLAG_KEY = "checkout-redesign"
FLAGS = [{
    "key": FLAG_KEY,
    "metadata": {"flagType": "experiment", "flagVersion": 1, "experimentKey": "exp-checkout"},
    "variants": {"control": {"key": "control", "value": "control"},
                 "treatment": {"key": "treatment", "value": "treatment"}},
    "segments": [{"bucket": {"selector": ["context", "user", "user_id"], "salt": FLAG_KEY, "allocations": [
        {"range": [0, 100], "distributions": [{"variant": "control", "range": [0, 21474837]},
                                              {"variant": "treatment", "range": [21474837, 42949673]}]}]}}],
}]
#: Users and the variant each must get (bucketing is deterministic).
EXPECTED = {"user-1": "control", "user-4": "treatment", "alice": "treatment", "user-6": "control"}

DEPLOYMENT_KEY = "server-examples-test"
ANALYTICS_KEY = "examples-analytics-key"

_COMPILED = compile_flags(FLAGS)


def expected_variant(user_id: str) -> str:
    """The variant the engine gives ``user_id``, evaluated in this process."""
    return evaluate(_COMPILED, User(user_id=user_id), [FLAG_KEY])[FLAG_KEY].key


def assignments(amplitude: AmplitudeStandIn) -> List[Tuple[str, str]]:
    """(user_id, variant) of every assignment event the stand-in accepted, sorted."""
    out = []
    for event in amplitude.events:
        assert event["event_type"] == "[Experiment] Assignment"
        out.append((event["user_id"], event["event_properties"][f"[Experiment] {FLAG_KEY}.variant"]))
    return sorted(out)


def check_event_requests(amplitude: AmplitudeStandIn) -> None:
    """Every event batch was sent with the analytics key from the environment."""
    requests = amplitude.requests("events")
    assert requests
    assert {request.json()["api_key"] for request in requests} == {ANALYTICS_KEY}


def subprocess_env(extra: Dict[str, str]) -> Dict[str, str]:
    """This process's environment plus ``extra``, with the repository importable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AMPLITUDE_")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def load_example(filename: str) -> ModuleType:
    """Import ``examples/<filename>`` under a private module name (the examples are not a package)."""
    name = "_example_" + pathlib.Path(filename).stem
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # frameworks look their app's module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
