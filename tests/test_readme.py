"""The README is executed: every code block runs, so none can drift from the code.

Python blocks run in a process of their own with Amplitude's hosts answered by the loopback
stand-in (``tests/readme_preamble.py``); blocks that define pytest tests run under pytest.
Command-line blocks run through the CLI the same way. The two set-up commands (creating a
venv and installing) are what ``.ci/run`` and a newcomer execute; they are listed here so a new
block cannot go unexecuted by accident.

Each block's process is forked from one helper interpreter that has only imported the libraries
(requests, this package, pytest) and has started no thread: the block itself still runs from a
blank ``__main__`` with the preamble, ends as Python ends a program (non-daemon threads joined,
atexit hooks run; only the module teardown is skipped), and its stdout, stderr and exit code
are what a ``python -c`` run would give. This costs a few milliseconds of CPU per block instead
of ~0.25 s for a fresh interpreter's start-up and teardown.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import types
from typing import Any, Dict, Iterator, List, NamedTuple, NoReturn, Tuple

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


class BlockResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


class BlockRunner:
    """Runs code in processes forked from a helper interpreter (see the module docstring)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                   "from tests.test_readme import serve_blocks; serve_blocks()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)

    def run(self, job: Dict[str, Any], timeout: float = 120.0) -> BlockResult:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(job).encode() + b"\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            os.killpg(process.pid, signal.SIGKILL)  # the runner and the block
            raise AssertionError(f"a README block did not finish within {timeout} s")
        line = process.stdout.readline()
        assert line, "the README block runner died"
        return BlockResult(**json.loads(line))

    def close(self) -> None:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()  # the runner's loop ends: it exits like any program
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:  # a block still running (it timed out): end it all
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        process.stdout.close()


def serve_blocks() -> None:
    """The helper interpreter: for each job read from stdin, fork, run it in the child, report on stdout."""
    # What blocks and the preamble import; nothing here starts a thread (fork copies only this one).
    import asyncio  # noqa: F401
    import importlib

    import requests.adapters  # noqa: F401

    import amplitude_experiment.testing  # noqa: F401
    try:
        import amplitude_experiment.redis  # noqa: F401
    except ImportError:
        pass
    import _pytest.config

    for name in (*_pytest.config.default_plugins, "_argcomplete"):  # what pytest.main() imports in a test block
        importlib.import_module("_pytest." + name)

    for line in sys.stdin.buffer:
        job = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _run_block(job, out.fileno(), err.fileno())  # never returns
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            reply = {"returncode": os.waitstatus_to_exitcode(status),
                     "stdout": out.read().decode("utf-8", "replace"), "stderr": err.read().decode("utf-8", "replace")}
        sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
        sys.stdout.buffer.flush()


def _run_block(job: Dict[str, Any], out: int, err: int) -> NoReturn:
    """In the forked child: become a ``python -c`` run of the job (or a pytest run), then exit."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(job["cwd"])
    os.environ.update(job["env"])
    try:
        if job["kind"] == "pytest":
            sys.argv = ["pytest"]
            code = int(pytest.main(job["args"]))
        else:
            sys.argv = ["-c"]
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(job["code"], "<string>", "exec"), main.__dict__)  # noqa: S102
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as an uncaught exception in ``python -c``: traceback, exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    # Interpreter shutdown as Python does it: join non-daemon threads, run atexit hooks (the
    # preamble's stand-in, clients never stopped). Module teardown is skipped (~0.1 s of CPU, and
    # nothing a block shows depends on it).
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@pytest.fixture(scope="module")
def blocks() -> Iterator[BlockRunner]:
    runner = BlockRunner()
    yield runner
    runner.close()


def run_python(runner: BlockRunner, code: str, tmp_path: pathlib.Path) -> BlockResult:
    if "REDIS_URL" in code:  # the fleet example: a real redis-server on a free port, as the fleet tests use
        from .redis.conftest import RedisServer, _free_port

        server = RedisServer(_free_port(), str(tmp_path))
        server.start()
        try:
            return _run_python(runner, code, tmp_path, {"REDIS_URL": server.url})
        finally:
            server.stop()
    return _run_python(runner, code, tmp_path, {})


def _run_python(runner: BlockRunner, code: str, tmp_path: pathlib.Path, env: Dict[str, str]) -> BlockResult:
    if re.search(r"^import pytest|^def test_", code, flags=re.M):
        path = tmp_path / "test_block.py"
        path.write_text("import sys; sys.path.insert(0, %r)\n" % str(ROOT / "tests") +
                        "import readme_preamble  # noqa: F401\n" + code, encoding="utf-8")
        # Third-party pytest plugins (xdist, hypothesis, anyio) play no part in a README test.
        return runner.run({"kind": "pytest", "args": ["-q", "-p", "no:cacheprovider", str(path)],
                           "cwd": str(tmp_path), "env": {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}})
    return runner.run({"kind": "python", "code": PREAMBLE + "\n" + code, "cwd": str(tmp_path), "env": env})


def test_every_block_is_of_a_known_kind() -> None:
    kinds = {lang for lang, _, _ in BLOCKS}
    assert kinds <= {"python", "sh", ""}, kinds
    for lang, code, line in BLOCKS:
        if lang == "sh":
            for command in code.strip().splitlines():
                assert command in SETUP_COMMANDS or command.startswith("amplitude-experiment-local "), (
                    f"README line {line}: shell command not executed by any test: {command}")


@pytest.mark.parametrize("code", [c for lang, c, _ in BLOCKS if lang == "python"], ids=_ids("python"))
def test_python_block_runs(code: str, tmp_path: pathlib.Path, blocks: BlockRunner) -> None:
    done = run_python(blocks, code, tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


CLI_BLOCKS = [(code, line) for lang, code, line in BLOCKS if lang == "sh" and "amplitude-experiment-local" in code]


@pytest.mark.parametrize("code", [code for code, _ in CLI_BLOCKS], ids=[f"line-{line}" for _, line in CLI_BLOCKS])
def test_command_line_block_runs(code: str, tmp_path: pathlib.Path, blocks: BlockRunner) -> None:
    # One interpreter runs the block's commands in order (a later one may read an earlier one's file).
    script = PREAMBLE + textwrap.dedent("""
        import shlex, sys
        from amplitude_experiment.cli import main
        for argv in COMMANDS:
            code = main(argv[1:])
            if code != 0:
                sys.exit(f"{shlex.join(argv)} exited with {code}")
    """).replace("COMMANDS", repr([shlex.split(c) for c in code.strip().splitlines()]))
    done = blocks.run({"kind": "python", "code": script, "cwd": str(tmp_path), "env": {}})
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
