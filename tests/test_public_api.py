"""The exported surface is deliberate, and official-SDK code runs unchanged."""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys

import amplitude_experiment
from amplitude_experiment import AssignmentConfig, CohortSyncConfig, LocalEvaluationConfig, User, Variant
from amplitude_experiment.testing import AmplitudeStandIn

from .evaluation.helpers import targeted_flag

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_public_api_matches_the_committed_list() -> None:
    # Every public name with its signature; an API change shows up as a diff of tests/public_api.txt.
    # After an intended change: python scripts/public_api.py > tests/public_api.txt
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "public_api.py")], capture_output=True,
                          text=True, check=True, timeout=60)
    assert done.stdout == (ROOT / "tests" / "public_api.txt").read_text(encoding="utf-8")


def test_top_level_all_is_a_literal_list() -> None:
    source = (ROOT / "amplitude_experiment" / "__init__.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    (assignment,) = [node for node in tree.body if isinstance(node, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert isinstance(assignment.value, ast.List)
    names = [ast.literal_eval(element) for element in assignment.value.elts]
    assert names == amplitude_experiment.__all__
    # The official SDK's top-level names are all here (checked against amplitude-experiment 1.13.0).
    assert {"AmplitudeCookie", "AssignmentConfig", "CohortSyncConfig", "Experiment", "LocalEvaluationClient",
            "LocalEvaluationConfig", "RemoteEvaluationClient", "RemoteEvaluationConfig", "ServerZone", "User",
            "Variant"} <= set(names)


def test_official_signatures_are_kept() -> None:
    params = inspect.signature(LocalEvaluationConfig).parameters
    assert list(params)[:12] == [
        "debug", "server_url", "server_zone", "flag_config_polling_interval_millis",
        "flag_config_poller_request_timeout_millis", "stream_updates", "stream_server_url",
        "stream_flag_conn_timeout", "assignment_config", "exposure_config", "cohort_sync_config", "logger"]
    defaults = {name: p.default for name, p in params.items()}
    assert defaults["server_url"] == "https://api.lab.amplitude.com"
    assert defaults["flag_config_polling_interval_millis"] == 30000
    assert defaults["flag_config_poller_request_timeout_millis"] == 10000
    assert defaults["stream_server_url"] == "https://stream.lab.amplitude.com"
    assert defaults["stream_flag_conn_timeout"] == 1500
    assert list(inspect.signature(User).parameters) == [
        "device_id", "user_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
        "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address",
        "user_properties", "groups", "group_properties", "group_cohort_ids", "cohort_ids"]
    assert list(inspect.signature(Variant).parameters) == ["value", "payload", "key", "metadata"]
    cohort = inspect.signature(CohortSyncConfig).parameters
    assert {n: p.default for n, p in cohort.items() if p.default is not inspect.Parameter.empty} == {
        "max_cohort_size": 2147483647, "cohort_polling_interval_millis": 60000,
        "cohort_server_url": "https://cohort-v2.lab.amplitude.com"}
    config = AssignmentConfig(api_key="k")
    assert (config.cache_capacity, config.send_evaluated_props, config.flush_queue_size,
            config.flush_interval_millis, config.flush_max_retries, config.events_url) == (
        65536, False, 200, 10000, 12, "https://api2.amplitude.com/2/httpapi")


def test_variant_equality_ignores_metadata() -> None:
    assert Variant("on", None, "on", {"a": 1}) == Variant(key="on", value="on")
    assert Variant(key="on", value="on") != Variant(key="on", value="off")
    assert str(Variant(key="k", value="v")) == "key: k, value: v, payload: None, metadata:None"


def test_secrets_stay_out_of_reprs() -> None:
    config = AssignmentConfig(api_key="analytics-secret-1234")
    cohort = CohortSyncConfig(api_key="cohort-api-5678", secret_key="very-secret-key")
    text = repr(config) + repr(cohort) + repr(LocalEvaluationConfig(assignment_config=config,
                                                                     cohort_sync_config=cohort))
    assert "analytics-secret" not in text and "very-secret-key" not in text and "cohort-api" not in text
    assert "'…1234'" in text


OFFICIAL_STYLE_CODE = '''
from amplitude_experiment import Experiment, LocalEvaluationConfig, User
from amplitude_experiment.local.evaluate_options import EvaluateOptions
from amplitude_experiment.exposure import ExposureConfig
from amplitude_experiment.assignment import AssignmentConfig

experiment = Experiment.initialize_local(
    "server-dropin", LocalEvaluationConfig(server_url=SERVER_URL, debug=False)
)
experiment.start()
user = User(user_id="user@company.com", device_id="abcdefg", user_properties={"premium": True})
variants = experiment.evaluate_v2(user)
variant = variants.get("flag-key")
RESULT = (variant.key, variant.value) if variant else None
RESULT_SUBSET = experiment.evaluate_v2(user, {"flag-key"})["flag-key"].value
experiment.stop()
'''


def test_official_style_code_runs_unchanged() -> None:
    with AmplitudeStandIn(flags=[targeted_flag("flag-key", ...)]) as server:
        namespace = {"SERVER_URL": server.url}
        exec(OFFICIAL_STYLE_CODE, namespace)  # noqa: S102 - the point is to run it verbatim
    assert namespace["RESULT"] == ("on", "on")
    assert namespace["RESULT_SUBSET"] == "on"
