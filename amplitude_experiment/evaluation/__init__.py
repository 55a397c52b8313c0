"""The evaluation engine: compile v2 flag JSON once, evaluate users against it many times.

Importable and usable on its own: no I/O, no threads. (The ``explain`` trace function lives in
``amplitude_experiment.evaluation.explain``; it is not re-exported here, where its name would
hide that module.)

>>> compiled = compile_flags(flags_json)
>>> evaluate(compiled, User(user_id="u1"))  # -> Dict[str, Variant]
"""

from .compiler import CompiledFlag, CompiledFlags, Outcome, compile_flags
from .engine import evaluate
from .explain import EvaluationDetail, Explanation, evaluate_details

__all__ = [
    "CompiledFlag",
    "CompiledFlags",
    "EvaluationDetail",
    "Explanation",
    "Outcome",
    "compile_flags",
    "evaluate",
    "evaluate_details",
]
