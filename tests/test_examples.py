"""The examples run offline against the stand-in and print what the README promises."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_example(name: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def test_demo() -> None:
    out = run_example("demo.py")
    assert "    alice@corp.example: checkout-redesign=treatment, dark-mode=on\n" in out
    assert "             user-dave: checkout-redesign=control, dark-mode=off\n" in out
    assert "Assignment tracking: 6 evaluations, 1 deduplicated, 5 events sent, 0 dropped\n" in out
    assert '"[Experiment] checkout-redesign.variant": "treatment"' in out
