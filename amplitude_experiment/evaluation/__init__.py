"""The evaluation engine: compile v2 flag JSON once, evaluate users against it many times.

Importable and usable on its own: no I/O, no threads.

>>> compiled = compile_flags(flags_json)
>>> evaluate(compiled, User(user_id="u1"))  # -> Dict[str, Variant]
"""

from .compiler import CompiledFlag, CompiledFlags, Outcome, compile_flags
from .engine import evaluate
from .explain import EvaluationDetail, Explanation, evaluate_details, explain

__all__ = [
    "CompiledFlag",
    "CompiledFlags",
    "EvaluationDetail",
    "Explanation",
    "Outcome",
    "compile_flags",
    "evaluate",
    "evaluate_details",
    "explain",
]
