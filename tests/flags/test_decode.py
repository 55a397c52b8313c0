"""Decoding a flag-config body entry by entry, and compiling the entries as they are decoded."""

from __future__ import annotations

import json
from typing import Any, List

import pytest

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.compiler import compile_entries
from amplitude_experiment.exceptions import FlagConfigError
from amplitude_experiment.flags.decode import decode_flags, iter_entries

from ..evaluation.helpers import targeted_flag

FLAGS = [targeted_flag("alpha", ...), {"key": "broken", "segments": 5}, targeted_flag("beta", ...)]


@pytest.mark.parametrize("dumps", [
    json.dumps, lambda f: json.dumps(f, indent=2), lambda f: json.dumps(f, separators=(",", ":"))])
@pytest.mark.parametrize("padding", ["", " \n\t"])
def test_each_entry_is_decoded_and_fingerprinted_by_its_own_text(dumps: Any, padding: str) -> None:
    text = padding + "[" + padding + (padding + "," + padding).join(map(dumps, FLAGS)) + padding + "]" + padding
    entries = list(iter_entries(text.encode()))
    assert [entry for entry, _ in entries] == FLAGS
    assert [fingerprint for _, fingerprint in entries] == [hash(dumps(flag)) for flag in FLAGS]
    assert decode_flags(text.encode()) == (FLAGS, [hash(dumps(flag)) for flag in FLAGS])


def test_compiling_while_decoding_gives_what_compiling_the_decoded_list_gives() -> None:
    body = json.dumps(FLAGS).encode()
    streamed = compile_entries(iter_entries(body), report=False)
    whole = compile_flags(json.loads(body), fingerprints=decode_flags(body).fingerprints, report=False)
    assert list(streamed.flags) == list(whole.flags) == ["alpha", "beta"]
    assert streamed.skipped == whole.skipped == {"broken": "segments must be a list"}
    assert streamed.entries == whole.entries == 3
    assert streamed.fingerprints == whole.fingerprints and set(streamed.fingerprints) == {"alpha", "broken", "beta"}
    user = User(user_id="u")
    streamed_keys = {k: v.key for k, v in evaluate(streamed, user).items()}
    assert streamed_keys == {k: v.key for k, v in evaluate(whole, user).items()} and streamed_keys


@pytest.mark.parametrize("body, message", [
    (b'[{"key": "a"}, {"key": ', "not valid JSON"),
    (b'[{"key": "a"} {"key": "b"}]', "not valid JSON"),
    (b'[{"key": "a"}] extra', "not valid JSON"),
    (b'{"key": "a"}', "must be a JSON array, got dict"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_a_body_that_goes_bad_after_good_entries_fails_the_whole_compile(body: bytes, message: str) -> None:
    compiled: List[Any] = []
    with pytest.raises(FlagConfigError, match=message):
        compiled.append(compile_entries(iter_entries(body), report=False))
    assert compiled == []
