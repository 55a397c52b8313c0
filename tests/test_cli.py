"""The command line: flags, evaluate and explain, against files and the stand-in; every error path."""

from __future__ import annotations

import io
import json
import os
import pathlib
import stat
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from amplitude_experiment import cli
from amplitude_experiment.cli import EXIT_INPUT, EXIT_NETWORK, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, KEY_ENV, main
from amplitude_experiment.testing import AmplitudeStandIn
from amplitude_experiment.testing.builders import FlagBuilder, condition, experiment, off_flag, on_flag, prop

KEY = "server-s3cr3t-deployment-key"

FLAGS: List[Dict[str, Any]] = [
    on_flag("dark-mode", payload={"theme": "dark"}),
    off_flag("legacy"),
    experiment("checkout", payloads={"treatment": {"button": "green"}}),
    (FlagBuilder("pricing")
     .variant("pro-price", "19.99")
     .rule("Pro plan", condition(prop("plan"), "is", "pro"), "pro-price")
     .rule("Adults with tags", [condition(prop("age"), "greater or equal", 18),
                                condition(prop("tags"), "set contains", "a")], "pro-price")
     .rule("Beta", condition(prop("beta"), "is", True), "pro-price")
     .build()),
]

Run = Tuple[int, str, str]


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def flags_file(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(FLAGS), "utf-8")
    return str(path)


@pytest.fixture
def stand_in() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, deployment_key=KEY) as server:
        yield server


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    def run_main(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert KEY not in out and KEY not in err
        return code, out, err

    return run_main


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0]
    return lines[0]


# ----- help ----------------------------------------------------------------------------------


def test_module_help_in_a_subprocess() -> None:
    done = subprocess.run([sys.executable, "-m", "amplitude_experiment", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m amplitude_experiment")
    for text in ("flags", "evaluate", "explain", "exit codes:", "4  network", KEY_ENV):
        assert text in done.stdout


def test_help_in_process(run: Any) -> None:
    code, out, _ = run("explain", "--help")
    assert code == EXIT_OK
    assert "FLAG" in out and "--user-file" in out and "5  a requested flag" in out


# ----- flags ---------------------------------------------------------------------------------


def test_flags_to_stdout(run: Any, stand_in: AmplitudeStandIn) -> None:
    code, out, err = run("flags", "--deployment-key", KEY, "--server-url", stand_in.url)
    assert (code, err) == (EXIT_OK, "")
    assert json.loads(out) == FLAGS
    assert out.startswith("[\n  {")  # pretty
    (request,) = stand_in.requests("flags")
    assert request.header("Authorization") == f"Api-Key {KEY}"


def test_flags_to_a_file_with_the_key_from_the_environment(
        run: Any, stand_in: AmplitudeStandIn, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY + "\n")  # surrounding whitespace is ignored
    target = tmp_path / "out.json"
    code, out, err = run("flags", "--server-url", stand_in.url + "/", "-o", str(target))
    assert (code, out) == (EXIT_OK, "")
    assert "wrote 4 flags" in err and str(target) in err
    assert json.loads(target.read_text("utf-8")) == FLAGS
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_flags_rejected_key(run: Any, stand_in: AmplitudeStandIn) -> None:
    code, out, err = run("flags", "--deployment-key", KEY + "-wrong", "--server-url", stand_in.url)
    assert (code, out) == (EXIT_NETWORK, "")
    line = one_error_line(err)
    assert "HTTP 401" in line and "deployment key was rejected" in line
    assert "wrong" not in line


@pytest.mark.parametrize("status", [403, 500, 503])
def test_flags_http_errors(run: Any, stand_in: AmplitudeStandIn, status: int) -> None:
    stand_in.add_fault("flags", status=status)
    code, out, err = run("flags", "--deployment-key", KEY, "--server-url", stand_in.url)
    assert (code, out) == (EXIT_NETWORK, "")
    assert f"HTTP {status}" in one_error_line(err)


def test_flags_garbage_body(run: Any, stand_in: AmplitudeStandIn) -> None:
    stand_in.add_fault("flags", action="garbage")
    code, _, err = run("flags", "--deployment-key", KEY, "--server-url", stand_in.url)
    assert code == EXIT_NETWORK
    assert "unusable" in one_error_line(err)


def test_flags_unreachable_server(run: Any) -> None:
    with AmplitudeStandIn() as server:
        url = server.url  # a port nobody listens on once stopped
    code, _, err = run("flags", "--deployment-key", KEY, "--server-url", url, "--timeout", "2")
    assert code == EXIT_NETWORK
    assert "ConnectionError" in one_error_line(err)


def test_flags_regions(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Tuple[str, float]] = []

    class FakeFetcher:
        def __init__(self, session: Any, server_url: str, deployment_key: str, timeout: float) -> None:
            assert deployment_key == KEY
            calls.append((server_url, timeout))

        def fetch(self) -> Tuple[List[Any], bytes]:
            return [], b"[]"

    monkeypatch.setattr(cli, "FlagFetcher", FakeFetcher)
    assert run("flags", "--deployment-key", KEY)[:2] == (EXIT_OK, "[]\n")
    assert run("flags", "--deployment-key", KEY, "--eu", "--timeout", "2.5")[0] == EXIT_OK
    assert calls == [("https://api.lab.amplitude.com", 10.0), ("https://flag.lab.eu.amplitude.com", 2.5)]


@pytest.mark.parametrize("argv, message", [
    (["flags"], f"no deployment key: pass --deployment-key KEY or set {KEY_ENV}"),
    (["flags", "--deployment-key", "  "], "deployment key is empty"),
    (["flags", "--deployment-key", "server-a b"], "spaces or control characters"),
    (["flags", "--deployment-key", "server-a\x00"], "spaces or control characters"),
    (["flags", "--deployment-key", KEY, "--eu", "--server-url", "http://x"], "not allowed with argument"),
    (["flags", "--deployment-key", KEY, "--server-url", "ftp://x"], "http(s) URL"),
    (["flags", "--deployment-key", KEY, "--server-url", "http://"], "http(s) URL"),
    (["flags", "--deployment-key", KEY, "--timeout", "0"], "positive number"),
    (["flags", "--deployment-key", KEY, "--timeout", "soon"], "not a number"),
    (["flags", "--deployment-key", KEY, "--bogus"], "unrecognized arguments"),
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors(run: Any, argv: List[str], message: str) -> None:
    code, out, err = run(*argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert message in one_error_line(err)


def test_flags_unwritable_output(run: Any, stand_in: AmplitudeStandIn, tmp_path: pathlib.Path) -> None:
    target = tmp_path / "missing-dir" / "flags.json"
    code, _, err = run("flags", "--deployment-key", KEY, "--server-url", stand_in.url, "-o", str(target))
    assert code == EXIT_INPUT
    assert "cannot write -o file" in one_error_line(err) and "missing-dir" in err


# ----- evaluate ------------------------------------------------------------------------------


def table(out: str) -> Dict[str, List[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["FLAG", "VARIANT", "VALUE", "REASON", "SEGMENT"]
    return {line.split()[0]: line.split(None, 4)[1:] for line in lines[1:]}


def test_evaluate_table_from_a_file(run: Any, flags_file: str) -> None:
    code, out, err = run("evaluate", "--flags", flags_file, "--device-id", "d1", "--prop", "plan=pro")
    assert (code, err) == (EXIT_OK, "")
    rows = table(out)
    assert rows["dark-mode"] == ["on", "on", "ALL_USERS", "All Other Users"]
    assert rows["legacy"] == ["off", "-", "DEFAULT", "All Other Users"]
    assert rows["checkout"][0] in ("control", "treatment") and rows["checkout"][2:] == ["SPLIT", "All Other Users"]
    assert rows["pricing"] == ["pro-price", "19.99", "TARGETING_MATCH", "Pro plan"]


def test_evaluate_json_and_user_options(run: Any, flags_file: str, tmp_path: pathlib.Path) -> None:
    user_file = tmp_path / "user.json"
    user_file.write_text(json.dumps({"user_id": "u1", "device_id": "from-file", "user_properties": {"x": 1}}))
    code, out, err = run("evaluate", "--flags", flags_file, "--user-file", str(user_file), "--device-id", "d2",
                         "--prop", "age=18", "--prop", 'tags=["a","b"]', "--prop", "name=Ada Lovelace", "--json")
    assert (code, err) == (EXIT_OK, "")
    details = json.loads(out)
    assert list(details) == [f["key"] for f in FLAGS]
    assert details["pricing"]["variant"]["key"] == "pro-price"
    assert details["pricing"]["segment_name"] == "Adults with tags"
    assert details["dark-mode"]["variant"]["payload"] == {"theme": "dark"}
    assert details["legacy"]["reason"] == "DEFAULT"
    checkout = details["checkout"]["variant"]["key"]
    # the override replaced the file's device id: the split agrees with a run for device d2 alone
    code, out, _ = run("evaluate", "--flags", flags_file, "--device-id", "d2", "--flag", "checkout", "--json")
    assert json.loads(out)["checkout"]["variant"]["key"] == checkout


@pytest.mark.parametrize("prop_arg, variant", [
    ("beta=true", "pro-price"),      # JSON true
    ("beta=True", "pro-price"),      # not JSON: the text "True", which "is true" matches too
    ("plan=pro", "pro-price"),       # not JSON: the text
    ('plan="pro"', "pro-price"),     # a JSON string
    ("age=17", "off"),
    ("plan=", "off"),                # empty text
])
def test_evaluate_prop_values(run: Any, flags_file: str, prop_arg: str, variant: str) -> None:
    code, out, _ = run("evaluate", "--flags", flags_file, "--prop", prop_arg, "--prop", "tags=[\"a\"]",
                       "--flag", "pricing", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["pricing"]["variant"]["key"] == variant


def test_evaluate_user_json_with_groups(run: Any, tmp_path: pathlib.Path) -> None:
    flag = (FlagBuilder("org-flag").variant("on")
            .rule("Acme", condition(["context", "groups", "org", "group_name"], "is", "acme"), "on").build())
    path = tmp_path / "flags.json"
    path.write_text(json.dumps([flag]))
    user = json.dumps({"user_id": "u1", "groups": {"org": ["acme"]}, "cohort_ids": ["c1"]})
    code, out, _ = run("evaluate", "--flags", str(path), "--user", user)
    assert code == EXIT_OK
    assert table(out)["org-flag"] == ["on", "on", "TARGETING_MATCH", "Acme"]


def test_evaluate_selected_flags_and_unknown_flags(run: Any, flags_file: str) -> None:
    code, out, err = run("evaluate", "--flags", flags_file, "--flag", "legacy", "--flag", "dark-mode",
                         "--user-id", "u1")
    assert (code, err) == (EXIT_OK, "")
    assert list(table(out)) == ["dark-mode", "legacy"]  # in evaluation order
    code, out, err = run("evaluate", "--flags", flags_file, "--flag", "legacy", "dark-mod", "--user-id", "u1")
    assert code == EXIT_NOT_FOUND
    assert table(out)["dark-mod"] == ["-", "-", "FLAG_NOT_FOUND", "-"]
    line = one_error_line(err)
    assert "not found" in line and "'dark-mod' (did you mean 'dark-mode'?)" in line


def test_evaluate_live(run: Any, stand_in: AmplitudeStandIn, flags_file: str,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--device-id", "d7", "--prop", "plan=pro", "--json"]
    code, live, err = run("evaluate", "--deployment-key", KEY, "--server-url", stand_in.url, *argv)
    assert (code, err) == (EXIT_OK, "")
    assert json.loads(live) == json.loads(run("evaluate", "--flags", flags_file, *argv)[1])
    monkeypatch.setenv(KEY_ENV, KEY)
    assert run("evaluate", "--server-url", stand_in.url, *argv)[1] == live
    code, _, err = run("evaluate", "--deployment-key", "server-other", "--server-url", stand_in.url)
    assert code == EXIT_NETWORK and "HTTP 401" in one_error_line(err)


def test_evaluate_flags_from_stdin(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(FLAGS).encode())))
    code, out, _ = run("evaluate", "--flags", "-", "--flag", "dark-mode")
    assert code == EXIT_OK and table(out)["dark-mode"][0] == "on"


def test_a_closed_pipe_ends_quietly(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps([on_flag(f"flag-{i}") for i in range(5000)]))
    with subprocess.Popen([sys.executable, "-m", "amplitude_experiment", "evaluate", "--flags", str(path),
                           "--user-id", "u1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().split() == [b"FLAG", b"VARIANT", b"VALUE", b"REASON", b"SEGMENT"]
        process.stdout.close()
        assert process.wait(timeout=60) == EXIT_OK
        assert process.stderr.read() == b""


def test_evaluate_no_flags(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert run("evaluate", "--flags", str(path), "--user-id", "u1") == (EXIT_OK, "(no flags)\n", "")
    assert run("evaluate", "--flags", str(path), "--json", "--user-id", "u1") == (EXIT_OK, "{}\n", "")


def test_an_empty_user_warns(run: Any, flags_file: str) -> None:
    code, _, err = run("evaluate", "--flags", flags_file, "--flag", "legacy")
    assert code == EXIT_OK
    assert err == ("warning: the user is empty (no ids, fields or properties): targeting and bucketing see "
                   "nothing; pass --user-id, --device-id, --prop or --user\n")


def test_malformed_flags_are_reported_and_the_rest_evaluated(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps([{"key": "broken", "segments": 3}, 7, on_flag("fine")]))
    code, out, err = run("evaluate", "--flags", str(path), "--user-id", "u1")
    # --help: "3 bad input: ... a malformed flag", even when the flag was not asked for by name.
    assert code == EXIT_INPUT
    assert list(table(out)) == ["fine"]
    assert "flag 'broken'" in err and "segments must be a list" in err and "'#1'" in err
    assert err.splitlines()[-1].endswith("malformed flags in --flags file " + repr(str(path)) + ": '#1', 'broken'")
    code, out, err = run("evaluate", "--flags", str(path), "--flag", "broken")
    assert code == EXIT_INPUT
    assert table(out)["broken"][2] == "FLAG_SKIPPED"
    assert "malformed flag in" in err.splitlines()[-1]


# ----- explain -------------------------------------------------------------------------------


def test_explain_text(run: Any, flags_file: str) -> None:
    code, out, err = run("explain", "pricing", "--flags", flags_file, "--prop", "age=30", "--prop", 'tags=["a"]')
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0] == "flag pricing: pro-price  [TARGETING_MATCH]"
    assert "segment 0 'Pro plan': conditions not met" in out
    assert "segment 1 'Adults with tags': matched -> pro-price" in out
    assert "segment 2 'Beta': not reached" in out
    assert "✓ context.user.user_properties.age = 30  greater or equal ['18']" in out


def test_explain_json_and_buckets(run: Any, flags_file: str) -> None:
    code, out, _ = run("explain", "--flags", flags_file, "--device-id", "d1", "checkout", "--json")
    assert code == EXIT_OK
    explanation = json.loads(out)
    assert explanation["flag_key"] == "checkout"
    assert explanation["result"]["reason"] == "SPLIT"
    bucket = explanation["segments"][0]["bucket"]
    assert bucket["salt"] == "checkout" and bucket["value"] == "d1"


def test_explain_live(run: Any, stand_in: AmplitudeStandIn) -> None:
    code, out, _ = run("explain", "dark-mode", "--deployment-key", KEY, "--server-url", stand_in.url)
    assert code == EXIT_OK
    assert out.startswith("flag dark-mode: on  [ALL_USERS]")


def test_explain_unknown_flag(run: Any, flags_file: str) -> None:
    code, out, err = run("explain", "chekout", "--flags", flags_file, "--user-id", "u1")
    assert (code, out) == (EXIT_NOT_FOUND, "")
    line = one_error_line(err)
    assert f"flag not found in --flags file {flags_file!r}: 'chekout' (did you mean 'checkout'?)" in line


def test_explain_malformed_flag(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps([{"key": "broken", "segments": 3}]))
    code, out, err = run("explain", "broken", "--flags", str(path))
    assert code == EXIT_INPUT
    assert "[FLAG_SKIPPED]" in out
    assert "is malformed: segments must be a list" in err.splitlines()[-1]


# ----- input errors --------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: pathlib.Path) -> Dict[str, str]:
    contents: Dict[str, bytes] = {
        "bad": b'[\n  {"key": "a",}\n]',
        "object": b'{"flags": []}',
        "latin1": '["caf\xe9"]'.encode("latin-1"),
        "user_array": b"[]",
        "user_bad": b'{"user_id": "u1"',
    }
    paths = {}
    for name, data in contents.items():
        (tmp_path / f"{name}.json").write_bytes(data)
        paths[name] = str(tmp_path / f"{name}.json")
    paths["missing"] = str(tmp_path / "missing.json")
    paths["dir"] = str(tmp_path)
    return paths


@pytest.mark.parametrize("command", ["evaluate", "explain"])
@pytest.mark.parametrize("args, message", [
    (["--flags", "{missing}"], "cannot read --flags file '{missing}': No such file or directory"),
    (["--flags", "{dir}"], "cannot read --flags file '{dir}'"),
    (["--flags", "{bad}"], "invalid JSON in --flags file '{bad}': Expecting property name enclosed "
                                "in double quotes at line 2, column 15"),
    (["--flags", "{object}"], "--flags file '{object}' must hold a JSON array of flags, not an object"),
    (["--flags", "{latin1}"], "--flags file '{latin1}' is not UTF-8 text (byte 5)"),
    (["--flags", "{flags}", "--user", "{{"], "invalid JSON in --user: Expecting property name enclosed in "
                                             "double quotes at line 1, column 2"),
    (["--flags", "{flags}", "--user", '"u1"'], "--user must be a JSON object of User fields, not a string"),
    (["--flags", "{flags}", "--user", '{{"userid": "u1"}}'], "unknown user field 'userid' (did you mean 'user_id'?)"),
    (["--flags", "{flags}", "--user", '{{"zzz": 1}}'], "unknown user field 'zzz' (fields: device_id, user_id"),
    (["--flags", "{flags}", "--user", '{{"user_id": 5}}'], "--user: user_id must be a string, not a number"),
    (["--flags", "{flags}", "--user", '{{"user_properties": []}}'], "user_properties must be an object, not an array"),
    (["--flags", "{flags}", "--user", '{{"cohort_ids": "c1"}}'], "cohort_ids must be an array, not a string"),
    (["--flags", "{flags}", "--user-file", "{missing}"], "cannot read --user-file '{missing}'"),
    (["--flags", "{flags}", "--user-file", "{user_array}"], "--user-file '{user_array}' must be a JSON "
                                                                 "object of User fields, not an array"),
    (["--flags", "{flags}", "--user-file", "{user_bad}"], "invalid JSON in --user-file '{user_bad}': "
                                                               "Expecting ',' delimiter at line 1, column 17"),
])
def test_input_errors(run: Any, files: Dict[str, str], flags_file: str, command: str, args: List[str],
                      message: str) -> None:
    names = dict(files, flags=flags_file)
    argv = [command] + (["checkout"] if command == "explain" else []) + [a.format(**names) for a in args]
    code, out, err = run(*argv)
    assert (code, out) == (EXIT_INPUT, "")
    assert message.format(**names) in one_error_line(err)


@pytest.mark.parametrize("command", ["evaluate", "explain"])
@pytest.mark.parametrize("args, message", [
    ([], "give --flags FILE or --deployment-key KEY (or set " + KEY_ENV + ")"),
    (["--flags", "f.json", "--deployment-key", KEY], "not allowed with argument"),
    (["--flags", "f.json", "--server-url", "http://x"], "--server-url, --eu and --timeout apply to --deployment-key"),
    (["--flags", "f.json", "--eu"], "apply to --deployment-key"),
    (["--flags", "f.json", "--user", "{}", "--user-file", "u.json"], "not allowed with argument"),
    (["--flags", "-", "--user-file", "-"], "cannot both read stdin"),
    (["--flags", "f.json", "--prop", "plan"], "expected NAME=VALUE, not 'plan'"),
    (["--flags", "f.json", "--prop", "=1"], "expected NAME=VALUE"),
    (["--deployment-key", ""], "deployment key is empty"),
])
def test_evaluation_usage_errors(run: Any, command: str, args: List[str], message: str) -> None:
    argv = [command] + (["checkout"] if command == "explain" else []) + args
    code, out, err = run(*argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert message in one_error_line(err)


def test_explain_needs_a_flag(run: Any, flags_file: str) -> None:
    code, _, err = run("explain", "--flags", flags_file)
    assert code == EXIT_USAGE and "required: FLAG" in one_error_line(err)


def test_evaluate_has_no_positional(run: Any, flags_file: str) -> None:
    code, _, err = run("evaluate", "checkout", "--flags", flags_file)
    assert code == EXIT_USAGE and "unrecognized arguments: checkout" in one_error_line(err)


def test_a_deeply_nested_flags_file_is_bad_input(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, out, err = run("evaluate", "--flags", str(path), "--user-id", "u1")
    assert (code, out) == (EXIT_INPUT, "")
    assert err.endswith(f"error: --flags file {str(path)!r} is nested too deeply to be flags or a user\n")
