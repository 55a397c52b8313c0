"""The README is executed: every code block runs, so none can drift from the code.

Python blocks run in a fresh interpreter with Amplitude's hosts answered by the loopback
stand-in (``tests/readme_preamble.py``); blocks that define pytest tests run under pytest.
Command-line blocks run through the CLI the same way. The two set-up commands (creating a
venv and installing) are what ``.ci/run`` and a newcomer execute; they are listed here so a new
block cannot go unexecuted by accident.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREAMBLE = (ROOT / "tests" / "readme_preamble.py").read_text(encoding="utf-8")

#: Shell blocks proven elsewhere: the README's two set-up commands (CI runs the second).
SETUP_COMMANDS = {
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python examples/demo.py",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' -r requirements-examples.txt && "
    ".venv/bin/python -m pytest -n 4",
}


def code_blocks(text: str) -> List[Tuple[str, str, int]]:
    """(language, code, line number) of every fenced block."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        blocks.append((match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1))
    return blocks


BLOCKS = code_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def _ids(kind: str) -> List[str]:
    return [f"line-{line}" for lang, _, line in BLOCKS if lang == kind]


def run_python(code: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    if "REDIS_URL" in code:  # the fleet example: a real redis-server on a free port, as the fleet tests use
        from .redis.conftest import RedisServer, _free_port

        server = RedisServer(_free_port(), str(tmp_path))
        server.start()
        try:
            return _run_python(code, tmp_path, {**os.environ, "REDIS_URL": server.url})
        finally:
            server.stop()
    return _run_python(code, tmp_path, None)


def _run_python(code: str, tmp_path: pathlib.Path,
                env: "Optional[Dict[str, str]]") -> subprocess.CompletedProcess[str]:
    if re.search(r"^import pytest|^def test_", code, flags=re.M):
        path = tmp_path / "test_block.py"
        path.write_text("import sys; sys.path.insert(0, %r)\n" % str(ROOT / "tests") +
                        "import readme_preamble  # noqa: F401\n" + code, encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    else:
        argv = [sys.executable, "-c", PREAMBLE + "\n" + code]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False, env=env)


def test_every_block_is_of_a_known_kind() -> None:
    kinds = {lang for lang, _, _ in BLOCKS}
    assert kinds <= {"python", "sh", ""}, kinds
    for lang, code, line in BLOCKS:
        if lang == "sh":
            for command in code.strip().splitlines():
                assert command in SETUP_COMMANDS or command.startswith("amplitude-experiment-local "), (
                    f"README line {line}: shell command not executed by any test: {command}")


@pytest.mark.parametrize("code", [c for lang, c, _ in BLOCKS if lang == "python"], ids=_ids("python"))
def test_python_block_runs(code: str, tmp_path: pathlib.Path) -> None:
    done = run_python(code, tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


CLI_BLOCKS = [(code, line) for lang, code, line in BLOCKS if lang == "sh" and "amplitude-experiment-local" in code]


@pytest.mark.parametrize("code", [code for code, _ in CLI_BLOCKS], ids=[f"line-{line}" for _, line in CLI_BLOCKS])
def test_command_line_block_runs(code: str, tmp_path: pathlib.Path) -> None:
    # One interpreter runs the block's commands in order (a later one may read an earlier one's file).
    script = PREAMBLE + textwrap.dedent("""
        import shlex, sys
        from amplitude_experiment.cli import main
        for argv in COMMANDS:
            code = main(argv[1:])
            if code != 0:
                sys.exit(f"{shlex.join(argv)} exited with {code}")
    """).replace("COMMANDS", repr([shlex.split(c) for c in code.strip().splitlines()]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
