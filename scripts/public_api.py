"""Print the public API: every exported name with its signature, one per line.

``tests/test_public_api.py`` compares this output with the committed ``tests/public_api.txt``,
so any change to the API is a visible diff in review. After an intended change::

    python scripts/public_api.py > tests/public_api.txt
"""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
from typing import Any, Iterator, List

#: Modules whose ``__all__`` is public API.
PUBLIC_MODULES = (
    "amplitude_experiment",
    "amplitude_experiment.evaluation",
    "amplitude_experiment.testing",
    "amplitude_experiment.openfeature",
    "amplitude_experiment.redis",
    "amplitude_experiment.local.evaluate_options",
    "amplitude_experiment.assignment",
    "amplitude_experiment.exposure",
)


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _members(cls: type) -> Iterator[str]:
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield f"  .{name} (property)"
        elif isinstance(member, (staticmethod, classmethod)):
            yield f"  .{name}{_signature(getattr(cls, name))}"
        elif inspect.isfunction(member):
            yield f"  .{name}{_signature(member)}"


def describe(module_name: str) -> List[str]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional extra that is not installed
        return [f"{module_name}: not importable ({exc.name} missing)"]
    lines = [f"{module_name}"]
    for name in sorted(getattr(module, "__all__", [])):
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, enum.Enum):
            lines.append(f" {name} enum: {', '.join(m.name for m in obj)}")
        elif inspect.isclass(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
            lines.append(f" {name} class({bases}){_signature(obj)}")
            lines.extend(_members(obj))
        elif callable(obj):
            lines.append(f" {name}{_signature(obj)}")
        else:
            lines.append(f" {name} = {type(obj).__name__}")
    return lines


def main() -> int:
    for module_name in PUBLIC_MODULES:
        print("\n".join(describe(module_name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
