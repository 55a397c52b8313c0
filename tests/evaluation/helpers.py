"""Small builders for hand-written evaluation tests."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

ON_OFF = {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}}


def condition(selector: List[str], op: str, values: List[str]) -> Dict[str, Any]:
    return {"selector": selector, "op": op, "values": values}


def prop(name: str) -> List[str]:
    return ["context", "user", "user_properties", name]


def targeted_flag(key: str, conditions: Any, variants: Optional[Dict[str, Any]] = None,
                  **extra: Any) -> Dict[str, Any]:
    """A flag whose first segment serves "on" when ``conditions`` match, else "off"."""
    segment: Dict[str, Any] = {"variant": "on"}
    if conditions is not ...:
        segment["conditions"] = conditions
    flag = {"key": key, "variants": variants or ON_OFF, "segments": [segment, {"variant": "off"}]}
    flag.update(extra)
    return flag
