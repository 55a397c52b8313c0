"""Flag configs (v2 JSON) for the OpenFeature provider tests."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

OFF = {"key": "off", "metadata": {"default": True}}


def cond(selector: List[str], values: List[str], op: str = "is") -> Dict[str, Any]:
    return {"selector": selector, "op": op, "values": values}


def prop(name: str) -> List[str]:
    return ["context", "user", "user_properties", name]


def static_flag(key: str, value: Optional[Any] = None, payload: Any = None, variant_key: str = "v",
                **extra: Any) -> Dict[str, Any]:
    """One segment serving one variant to everyone."""
    variant: Dict[str, Any] = {"key": variant_key}
    if value is not None:
        variant["value"] = value
    if payload is not None:
        variant["payload"] = payload
    flag = {"key": key, "variants": {variant_key: variant, "off": OFF}, "segments": [{"variant": variant_key}]}
    flag.update(extra)
    return flag


BOOL_FLAG = {
    "key": "bool-flag",
    "metadata": {"flagType": "release", "flagVersion": 3, "deployed": True},
    "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
    "segments": [
        {"metadata": {"segmentName": "Pro users"}, "conditions": [[cond(prop("plan"), ["pro"])]], "variant": "on"},
        {"metadata": {"segmentName": "All Other Users"}, "variant": "off"},
    ],
}

COLOR_EXPERIMENT = {
    "key": "color",
    "metadata": {"flagType": "experiment", "flagVersion": 7, "experimentKey": "exp-color-7"},
    "variants": {"red": {"key": "red", "value": "red"}, "blue": {"key": "blue", "value": "blue"},
                 "green": {"key": "green", "value": "green"}, "off": OFF},
    "segments": [
        {"metadata": {"segmentName": "Germany"}, "conditions": [[cond(["context", "user", "country"], ["DE"])]],
         "variant": "red"},
        {"metadata": {"segmentName": "Enterprise orgs"},
         "conditions": [[cond(["context", "groups", "org", "group_name"], ["acme"]),
                         cond(["context", "groups", "org", "group_properties", "tier"], ["enterprise"])]],
         "variant": "blue"},
        {"metadata": {"segmentName": "All Other Users"}, "variant": "green"},
    ],
}

SPLIT_FLAG = {
    "key": "split",
    "metadata": {"flagType": "experiment", "flagVersion": 2, "experimentKey": "exp-split-2"},
    "variants": {"treatment": {"key": "treatment", "value": "treatment"}, "off": OFF},
    "segments": [{
        "metadata": {"segmentName": "All Other Users"},
        "bucket": {"selector": ["context", "user", "user_id"], "salt": "salt",
                   "allocations": [{"range": [0, 100],
                                    "distributions": [{"variant": "treatment", "range": [0, 42949673]}]}]},
        "variant": "off",
    }],
}

NO_VARIANT_FLAG = {
    "key": "pro-only",
    "metadata": {"flagType": "release", "flagVersion": 5},
    "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
    "segments": [{"conditions": [[cond(prop("plan"), ["pro"])]], "variant": "on"}],
}

MALFORMED_FLAG = {"key": "malformed", "variants": {"on": {"key": "on"}}, "segments": "not a list"}

PARENT_FLAG = static_flag("parent", "on", variant_key="on", metadata={"flagType": "release", "flagVersion": 1})
CHILD_FLAG = {
    "key": "child",
    "dependencies": ["parent"],
    "metadata": {"flagType": "release", "flagVersion": 4},
    "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
    "segments": [{"conditions": [[cond(["result", "parent", "key"], ["on"])]], "variant": "on"},
                 {"variant": "off"}],
}

FLAGS: List[Dict[str, Any]] = [
    BOOL_FLAG,
    COLOR_EXPERIMENT,
    SPLIT_FLAG,
    NO_VARIANT_FLAG,
    MALFORMED_FLAG,
    PARENT_FLAG,
    CHILD_FLAG,
    static_flag("static-true", "TRUE", variant_key="enabled"),
    static_flag("static-off-value", "Off", variant_key="disabled"),
    static_flag("keyed-on", variant_key="on"),  # no value: the key stands for it
    static_flag("bool-bad", "maybe"),
    static_flag("int-flag", "42"),
    static_flag("int-negative", "-7"),
    static_flag("int-bad-decimal", "4.2"),
    static_flag("int-bad-space", " 42"),
    static_flag("int-bad-underscore", "1_000"),
    static_flag("float-flag", "2.5"),
    static_flag("float-integral", "3"),
    static_flag("float-exponent", "1e3"),
    static_flag("float-bad-text", "abc"),
    static_flag("float-bad-nan", "nan"),
    static_flag("float-bad-inf", "1e999"),
    static_flag("string-flag", "hello", metadata={"flagType": "release", "flagVersion": 9}),
    static_flag("object-flag", "on", payload={"color": "blue", "sizes": [1, 2]}),
    static_flag("list-flag", "on", payload=[1, "two", {"three": 3}]),
    static_flag("object-scalar-payload", "on", payload="text"),
    static_flag("object-no-payload", "on"),
]
