#!/usr/bin/env python3
"""Generate the evaluation conformance fixture by running the official SDK as a black box.

Usage (from the repository root, with our normal python3)::

    python3 scripts/generate_conformance.py --reference-python /work/refvenv/bin/python
    python3 scripts/generate_conformance.py --seed 1130 --output tests/evaluation/fixtures/conformance.json

``--reference-python`` is the interpreter of a separate virtualenv that has
``amplitude-experiment==1.13.0`` installed; ``scripts/reference_oracle.py`` runs inside it.

With a fixed seed this script builds flag configurations and users, asks the reference
for the variants, and writes ``{"generated_by", "reference", "seed", "suites": [...]}``.
Each suite holds ``flags`` and ``cases``; a case holds ``user`` (``User`` keyword
arguments), ``flag_keys`` (``null`` or a list), ``expected`` (``{flag: {"key", "value",
"payload", "metadata"}}``) and ``ordered`` (true when ``flag_keys`` is null: the reference
then returns flags in its evaluation order; with ``flag_keys`` it iterates a Python set, so
those results are stored sorted by flag key and only the key set is meaningful).

The output is deterministic: running twice with the same seed gives the same file.

Our engine deliberately corrects a few reference behaviours (design.md §4, corrections a-i),
so most suites keep their inputs where both agree (see ``check_user``): no falsy property
values (``0``, ``""``, ``[]``...), no booleans, no dict property values, lists only of
non-empty strings and non-zero ints, no empty ``conditions`` list, only valid regexes,
strings that ``float()`` accepts are always plain ASCII decimals, ASCII versions, finite
floats, no dependency cycles.

The ``list-elements-*`` suites deliberately go beyond that region: every operator against
lists holding booleans, numbers, nulls, duplicates, mixed case, padded strings and empty
lists. There the reference is asked about an equivalent input wherever a correction applies
(b: booleans, e: set operators on lists without elements, a: non-set operators on ``[]``),
and each such case lists the corrected flags in ``"corrections"``; the rules and why they are
right are written at ``list_elements_suite``. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
ORACLE = REPO / "scripts" / "reference_oracle.py"
DEFAULT_OUTPUT = REPO / "tests" / "evaluation" / "fixtures" / "conformance.json"
DEFAULT_REFERENCE_PYTHON = "/work/refvenv/bin/python"
REFERENCE = "amplitude-experiment==1.13.0"
DEFAULT_SEED = 1130

NONE = "(none)"
MAX_DISTRIBUTION = 42949673  # exclusive end: (2**32 - 1) // 100 + 1

STRING_OPS = ["is", "is not", "contains", "does not contain"]
COMPARISON_OPS = ["less", "less or equal", "greater", "greater or equal"]
VERSION_OPS = ["version less", "version less or equal", "version greater", "version greater or equal"]
SET_OPS = [
    "set is",
    "set is not",
    "set contains",
    "set does not contain",
    "set contains any",
    "set does not contain any",
]
REGEX_OPS = ["regex match", "regex does not match"]
ALL_OPS = STRING_OPS + COMPARISON_OPS + VERSION_OPS + SET_OPS + REGEX_OPS
# Short operator names for flag keys (the fixture repeats flag keys in every case, size matters).
OP_CODES = dict(zip(ALL_OPS, [
    "is", "isnot", "has", "hasnot", "lt", "le", "gt", "ge", "vlt", "vle", "vgt", "vge",
    "seteq", "setne", "setall", "setnotall", "setany", "setnone", "re", "notre",
]))
SUITE_PREFIXES = {
    "operators-string": "str", "operators-comparison": "cmp", "operators-version": "ver",
    "operators-set": "set", "operators-regex": "re", "lists": "ls", "none-values": "nn", "groups": "grp",
    "dependencies": "dep",
    "flag-keys": "fk", "metadata-merge": "md", "buckets": "bk", "missing-variants": "mv", "mixed": "mx",
    "list-elements": "le",
}
UNICODE_FLAG_KEYS = ["ünï-flag", "日本-flag", "🚀-launch", "flag with spaces", "Ωmega.flag"]

USER_FIELDS = [
    "user_id", "device_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
    "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address",
]
GROUP_TYPES = ["org", "team", "company"]

# Realistic values for the predefined user fields (all strings, all "safe", see check_string).
FIELD_VOCABULARY: Dict[str, List[str]] = {
    "country": ["United States", "Germany", "Japan", "Brazil", "France", "India", "Canada", "Côte d'Ivoire"],
    "city": ["San Francisco", "Berlin", "Tokyo", "São Paulo", "Paris", "Mumbai", "Toronto", "Zürich"],
    "region": ["California", "Bavaria", "Kanto", "Ontario", "Île-de-France", "Maharashtra"],
    "dma": ["San Francisco-Oakland-San Jose, CA", "New York, NY", "Los Angeles, CA", "Chicago, IL"],
    "language": ["English", "German", "Japanese", "en-US", "pt-BR", "fr"],
    "platform": ["iOS", "Android", "Web", "macOS", "Windows"],
    "version": ["1.2", "1.2.3", "1.2.3-beta.1", "10.0.0", "2.0.1", "1.10.0", "3.4.5-rc.2", "9.9"],
    "os": ["ios 17.1", "android 14", "Mac OS X", "Windows 11", "Chrome OS", "linux"],
    "device_manufacturer": ["Apple", "Samsung", "Google", "Xiaomi", "OnePlus"],
    "device_brand": ["apple", "samsung", "google", "redmi", "oneplus"],
    "device_model": ["iPhone15,2", "Pixel 8", "SM-G991B", "iPad13,4", "Redmi Note 12"],
    "carrier": ["T-Mobile", "Verizon", "AT&T", "Vodafone", "NTT docomo"],
    "library": ["amplitude-ios/8.17.0", "amplitude-android/2.39.1", "experiment-python-server/1.13.0",
                "amplitude-js/8.21.9"],
    "ip_address": ["192.168.1.10", "10.0.0.1", "172.16.254.3", "2001:db8::1", "8.8.8.8"],
}
WORDS = [
    "premium", "free", "enterprise", "starter", "gold", "silver", "bronze", "trial", "beta", "alpha",
    "web", "mobile", "desktop", "chrome", "safari", "firefox", "us-east", "eu-west", "ap-south", "organic",
    "paid_search", "referral", "newsletter", "holiday", "summer", "winter", "checkout", "onboarding",
    "power-user", "churn-risk", "vip", "staff", "tester", "v2", "flow.b", "café", "naïve", "straße",
    "日本", "東京", "Ωmega", "🚀launch", "ÉCOLE", "Señor", "Admin", "GOLD", "Premium",
]
NUMBER_STRINGS = ["12", "-3.5", "1e3", " 7 ", "100", "2.50", "42", "0.25", "-17", "3", "1000", "99.9", "5e-1"]
VERSIONS = [
    "1.2", "1.2.3", "1.2.3-beta.1", "1.2.3-beta.2", "1.2.3-alpha", "10.0.0", "1.10.0", "1.9.9", "2.0",
    "2.0.0", "0.9.1", "3.4.5-rc.1", "1.2.4", "1.3", "10.2.11", "4.0.0-SNAPSHOT", "1.0.0",
]
PROPERTY_NAMES = {
    "str": ["plan", "tier", "source", "campaign", "browser", "role", "email_domain", "cohort_label",
            "region_code"],
    "num": ["age", "score", "visits", "ratio", "purchases", "ltv", "level", "days_active"],
    "ver": ["app_version", "sdk_version", "build", "client_version"],
    "list": ["tags", "roles", "interests", "features", "ab_groups"],
    "jsonlist": ["tags_json", "segments_json", "skus_json"],
}
PLAIN_DECIMAL = re.compile(r" ?-?\d+(\.\d+)?(e-?\d+)? ?\Z")


# --------------------------------------------------------------------------------------------
# Keeping inputs in the region where the reference and our (corrected) engine agree.


def is_safe_string(value: Any) -> bool:
    """Non-empty, not ``(none)``, one line, and if ``float()`` accepts it, a plain ASCII decimal."""
    if not isinstance(value, str) or not value or value == NONE or "\n" in value:
        return False
    try:
        float(value)
    except ValueError:
        return True
    return bool(PLAIN_DECIMAL.match(value))


def check_string(value: str) -> None:
    assert is_safe_string(value), f"unsafe string {value!r}"


def check_value(value: Any, *, top: bool = True) -> None:
    """A property value: truthy, no bool, no dict, lists of strings / non-zero ints, finite floats."""
    assert value is not None and not isinstance(value, (bool, dict, tuple, set)), repr(value)
    if isinstance(value, str):
        check_string(value)
    elif isinstance(value, int):
        assert value != 0, repr(value)
    elif isinstance(value, float):
        assert value != 0.0 and math.isfinite(value), repr(value)
    elif isinstance(value, list):
        assert top and value, repr(value)
        for element in value:
            assert isinstance(element, (str, int)) and not isinstance(element, bool), repr(value)
            check_value(element, top=False)
    else:
        raise AssertionError(f"unexpected value {value!r}")


def check_user(user: Dict[str, Any]) -> None:
    """Assert that a user stays where the reference and our engine are meant to agree."""
    for name, value in user.items():
        if name in USER_FIELDS:
            check_string(value)
            if name == "version":
                assert value.isascii(), value
        elif name == "user_properties":
            assert isinstance(value, dict) and value
            for prop_value in value.values():
                check_value(prop_value)
        elif name == "cohort_ids":
            assert isinstance(value, list) and value
            for cohort in value:
                check_string(cohort)
        elif name == "groups":
            assert isinstance(value, dict) and value
            for names in value.values():
                assert isinstance(names, list) and names
                for group_name in names:
                    check_string(group_name)
        elif name == "group_properties":
            assert isinstance(value, dict) and value
            for by_name in value.values():
                assert isinstance(by_name, dict) and by_name
                for props in by_name.values():
                    assert isinstance(props, dict) and props
                    for prop_value in props.values():
                        check_value(prop_value)
        else:
            raise AssertionError(f"unknown user field {name}")


def check_flags(flags: List[Dict[str, Any]]) -> None:
    """Unique keys, no ``conditions: []``, valid regexes, no dependency cycles."""
    keys = [f["key"] for f in flags]
    assert len(keys) == len(set(keys)), "duplicate flag keys"
    by_key = {f["key"]: f for f in flags}
    for flag in flags:
        for segment in flag["segments"]:
            if "conditions" in segment:
                assert segment["conditions"], f"{flag['key']}: empty conditions"
                for group in segment["conditions"]:
                    assert group, f"{flag['key']}: empty condition group"
                    for condition in group:
                        assert condition["op"] in ALL_OPS, condition
                        if condition["op"] in REGEX_OPS:
                            for pattern in condition["values"]:
                                re.compile(pattern)
    state: Dict[str, int] = {}

    def visit(key: str) -> None:
        assert state.get(key) != 1, f"dependency cycle through {key}"
        if state.get(key) == 2 or key not in by_key:
            return
        state[key] = 1
        for dep in by_key[key].get("dependencies") or []:
            visit(dep)
        state[key] = 2

    for key in keys:
        visit(key)


# --------------------------------------------------------------------------------------------
# Random building blocks.


@dataclass
class Attr:
    """Something a condition can select, with the values users (and conditions) draw from."""

    selector: List[str]
    kind: str  # str | num | ver | list | jsonlist | cohorts
    pool: List[Any] = field(default_factory=list)


class Gen:
    """All randomness goes through one seeded ``random.Random``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self._serial = 0

    # -- scalars -------------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items: Sequence[Any]) -> Any:
        return self.rng.choice(items)

    def sample(self, items: Sequence[Any], lo: int, hi: int) -> List[Any]:
        return self.rng.sample(list(items), self.rng.randint(lo, min(hi, len(items))))

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def random_word(self) -> str:
        """A random token of ``a-z0-9-._`` with a letter in g-z, never something float() accepts."""
        while True:
            n = self.rng.randint(3, 9)
            chars = [self.pick("abcdefghijklmnopqrstuvwxyz0123456789-._") for _ in range(n)]
            chars[self.rng.randrange(n)] = self.pick("ghijklmnopqrstuvwxyz")
            word = "".join(chars)
            try:
                float(word)
            except ValueError:
                return word

    def word(self) -> str:
        return self.pick(WORDS) if self.chance(0.6) else self.random_word()

    def number(self) -> Any:
        """A non-zero int or finite float, or a plain decimal string."""
        r = self.rng.random()
        if r < 0.4:
            return self.pick([1, 2, 3, 5, 7, 10, 12, 18, 21, 42, 65, 100, 250, 1000, -1, -5, -17])
        if r < 0.6:
            return self.pick([0.5, 2.5, 3.75, -3.5, 99.9, 12.0, 1000.0, 0.25, 7.125, -0.75])
        if r < 0.9:
            return self.pick(NUMBER_STRINGS)
        value = round(self.rng.uniform(-500, 500), self.rng.randint(0, 2))
        return value if value != 0 else 1.5

    def number_string(self, around: Any = None) -> str:
        """A plain decimal (condition value), near ``around`` when given."""
        if around is not None and self.chance(0.7):
            base = float(str(around).strip())
            choice = self.rng.random()
            if choice < 0.4:
                return str(around).strip()
            if choice < 0.7:
                delta = self.pick([1, 0.5, 10, 0.01])
                result = base + delta if self.chance(0.5) else base - delta
                if result == int(result) and self.chance(0.5):
                    return repr(int(result))
                return repr(round(result, 4))
            return self.pick(NUMBER_STRINGS).strip()
        return self.pick(NUMBER_STRINGS)

    def version(self) -> str:
        if self.chance(0.7):
            return self.pick(VERSIONS)
        major, minor, patch = self.rng.randint(0, 12), self.rng.randint(0, 20), self.rng.randint(0, 30)
        r = self.rng.random()
        if r < 0.3:
            return f"{major}.{minor}"
        if r < 0.8:
            return f"{major}.{minor}.{patch}"
        return f"{major}.{minor}.{patch}-{self.pick(['alpha', 'beta', 'rc'])}.{self.rng.randint(1, 12)}"

    def id_like(self, prefix: str) -> str:
        r = self.rng.random()
        if r < 0.4:
            return f"{prefix}-{self.rng.randint(1, 99999)}"
        if r < 0.7:
            return "-".join(f"{self.rng.getrandbits(b):0{b // 4}x}" for b in (32, 16, 16, 16, 48))
        if r < 0.9:
            name = self.pick(["alice", "bob", "carol", "dave", "erin"])
            return f"{name}{self.rng.randint(1, 999)}@example.com"
        return self.pick(["ünï-user", "日本-user", "🙂-user", "user with space"])

    def regex_for(self, samples: Sequence[Any]) -> str:
        """A valid (Python ``re``) pattern, often one that matches one of ``samples``."""
        sample = str(self.pick(samples)) if samples else self.random_word()
        r = self.rng.random()
        if r < 0.2:
            return "^" + re.escape(sample[: self.rng.randint(1, max(1, len(sample)))])
        if r < 0.35:
            return re.escape(sample[-self.rng.randint(1, max(1, len(sample))):]) + "$"
        if r < 0.5:
            others = [str(s) for s in self.sample(samples, 1, 3)] if samples else [sample]
            return "^(" + "|".join(re.escape(o) for o in others) + ")$"
        if r < 0.6:
            return re.escape(sample[len(sample) // 2:]) if len(sample) > 1 else sample
        return self.pick([
            r"^[a-z]+$", r"\d", r"^\d+(\.\d+)*$", r"[A-Z]", r".*", r"^.{3,6}$", r"\s", r"-",
            r"^(premium|gold|vip)", r"@example\.com$", r"^[^@]+@[^@]+$", r"(?i)^PREMIUM", r"\w+\.\w+",
            r"^1\.", r"beta|rc", r"\bweb\b", r"[0-9]{2,}",
        ])

    # -- attributes, conditions, users ---------------------------------------------------------

    def pool_for(self, kind: str, field_name: Optional[str] = None) -> List[Any]:
        if field_name in FIELD_VOCABULARY:
            return self.sample(FIELD_VOCABULARY[field_name], 3, 6)
        if field_name in ("user_id", "device_id"):
            return [self.id_like(field_name.split("_")[0]) for _ in range(self.rng.randint(3, 6))]
        if kind == "num":
            return [self.number() for _ in range(self.rng.randint(3, 6))]
        if kind == "ver":
            return [self.version() for _ in range(self.rng.randint(3, 6))]
        if kind == "cohorts":
            return [f"cohort-{self.random_word()}" for _ in range(self.rng.randint(3, 6))]
        if kind in ("list", "jsonlist"):
            pool: List[Any] = [self.word() for _ in range(self.rng.randint(3, 6))]
            if self.chance(0.3):
                pool += [self.pick([1, 2, 3, 42, 7, 100])]
            return pool
        return [self.word() for _ in range(self.rng.randint(3, 6))]

    def attr(self, kind: str, where: str = "props") -> Attr:
        """A selectable attribute of ``kind``; ``where`` is props | field | group_name | group_props."""
        if kind == "cohorts":
            return Attr(["context", "user", "cohort_ids"], kind, self.pool_for(kind))
        if where == "field":
            name = self.pick(["version"] if kind == "ver" else [f for f in USER_FIELDS if f != "version"])
            field_kind = "ver" if name == "version" else "str"
            return Attr(["context", "user", name], field_kind, self.pool_for(kind, name))
        if where == "group_name":
            group_type = self.pick(GROUP_TYPES)
            companies = ["acme", "globex", "initech", "umbrella", "stark"]
            names = [f"{self.pick(companies)}-{self.rng.randint(1, 9)}"
                     for _ in range(self.rng.randint(3, 5))]
            return Attr(["context", "groups", group_type, "group_name"], "str", names)
        prop = self.pick(PROPERTY_NAMES[kind])
        if where == "group_props":
            return Attr(["context", "groups", self.pick(GROUP_TYPES), "group_properties", prop], kind,
                        self.pool_for(kind))
        return Attr(["context", "user", "user_properties", prop], kind, self.pool_for(kind))

    def values_for(self, attr: Attr, op: str) -> List[str]:
        """Condition values for ``op`` on ``attr``, usually drawn from the attribute's pool."""
        pool = attr.pool
        if op in REGEX_OPS:
            values = [self.regex_for(pool) for _ in range(self.rng.randint(1, 2))]
        elif op in VERSION_OPS:
            values = [self.pick(pool) if attr.kind == "ver" and self.chance(0.6) else self.version()
                      for _ in range(self.rng.randint(1, 2))]
        elif op in COMPARISON_OPS:
            if attr.kind == "num":
                values = [self.number_string(self.pick(pool)) for _ in range(self.rng.randint(1, 2))]
            elif attr.kind == "ver":
                values = [self.pick(pool) if self.chance(0.5) else self.version()]
            else:
                values = [str(self.pick(pool)) if self.chance(0.5) else self.word()
                          for _ in range(self.rng.randint(1, 2))]
        elif op in SET_OPS:
            values = [str(v) for v in self.sample(pool, 1, 3)]
            if self.chance(0.2):
                values.append(self.word())
        else:  # is / is not / contains / does not contain
            values = []
            for _ in range(self.rng.randint(1, 3)):
                value = str(self.pick(pool)).strip() if self.chance(0.75) else self.word()
                if op in ("contains", "does not contain") and len(value) > 2 and self.chance(0.6):
                    start = self.rng.randrange(len(value) - 1)
                    value = value[start:start + self.rng.randint(1, len(value) - start)]
                    if self.chance(0.3):
                        value = value.upper()
                if value.strip() and is_safe_string(value):
                    values.append(value)
            if not values:
                values = [self.word()]
        if self.chance(0.1):
            values.append(NONE)
        values = list(dict.fromkeys(v for v in values if v))
        for value in values:
            if value != NONE and op not in REGEX_OPS:
                check_string(value)
        return values

    def condition(self, attr: Attr, op: str) -> Dict[str, Any]:
        return {"selector": list(attr.selector), "op": op, "values": self.values_for(attr, op)}

    def ops_for(self, attr: Attr) -> List[str]:
        """Operators that make sense (or are interesting) for an attribute."""
        if attr.kind == "num":
            return COMPARISON_OPS * 3 + ["is", "is not"] + REGEX_OPS + ["contains"]
        if attr.kind == "ver":
            return VERSION_OPS * 3 + ["is", "is not"] + COMPARISON_OPS + REGEX_OPS
        if attr.kind in ("list", "jsonlist", "cohorts"):
            return SET_OPS  # non-set operators on lists live in the "lists-*" suites
        return STRING_OPS * 2 + REGEX_OPS + COMPARISON_OPS[:2] + ["is", "is not"]

    def user_value(self, attr: Attr) -> Any:
        """A value for ``attr``: from its pool most of the time (so conditions match), else fresh."""
        from_pool = self.chance(0.7)
        if attr.kind in ("list", "jsonlist", "cohorts"):
            if from_pool:
                items = self.sample(attr.pool, 1, 4)
            else:
                items = [self.word() for _ in range(self.rng.randint(1, 3))]
            if attr.kind == "cohorts":
                return [str(i) for i in items]
            if attr.kind == "jsonlist":
                return json.dumps(items, ensure_ascii=self.chance(0.5),
                                  separators=(",", ":") if self.chance(0.5) else None)
            return items
        if from_pool:
            return self.pick(attr.pool)
        if attr.kind == "num":
            return self.number()
        if attr.kind == "ver":
            return self.version()
        field_name = attr.selector[2] if attr.selector[:2] == ["context", "user"] else None
        if field_name in FIELD_VOCABULARY:
            return self.pick(FIELD_VOCABULARY[field_name])
        if field_name in ("user_id", "device_id"):
            return self.id_like(field_name.split("_")[0])
        return self.word()

    def user(self, attrs: Sequence[Attr], missing: float = 0.2, ids: bool = True) -> Dict[str, Any]:
        """A user (``User`` kwargs) that sets each attribute with probability ``1 - missing``."""
        user: Dict[str, Any] = {}
        if ids:
            if self.chance(0.8):
                user["user_id"] = self.id_like("user")
            if self.chance(0.8):
                user["device_id"] = self.id_like("device")
        group_props: List[Tuple[Attr, Any]] = []
        for attr in attrs:
            if attr.selector[0] == "result" or self.chance(missing):
                continue
            value = self.user_value(attr)
            sel = attr.selector
            if sel[:2] == ["context", "user"] and sel[2] in USER_FIELDS:
                if sel[2] == "version" and not isinstance(value, str):
                    value = self.version()
                user[sel[2]] = str(value) if not isinstance(value, str) else value
            elif sel[:3] == ["context", "user", "user_properties"]:
                user.setdefault("user_properties", {})[sel[3]] = value
            elif sel == ["context", "user", "cohort_ids"]:
                user["cohort_ids"] = value
            elif sel[1] == "groups" and sel[3] == "group_name":
                names = [str(value)]
                if self.chance(0.2):
                    names.append(f"other-{self.random_word()}")
                user.setdefault("groups", {})[sel[2]] = names
            else:
                group_props.append((attr, value))
        for attr, value in group_props:
            group_type, prop = attr.selector[2], attr.selector[4]
            groups = user.setdefault("groups", {})
            if group_type not in groups and self.chance(0.85):
                groups[group_type] = [f"{self.pick(['acme', 'globex', 'initech'])}-{self.rng.randint(1, 9)}"]
            name = groups[group_type][0] if group_type in groups else f"lonely-{self.random_word()}"
            if self.chance(0.1) and group_type in groups:
                name = f"not-first-{self.random_word()}"  # properties of a group the user is not first in
            by_name = user.setdefault("group_properties", {}).setdefault(group_type, {})
            by_name.setdefault(name, {})[prop] = value
        if "groups" in user and not user["groups"]:
            del user["groups"]
        if self.chance(0.15):
            user.setdefault("user_properties", {})[self.pick(["misc", "note", "theme"])] = self.word()
        check_user(user)
        return user

    # -- flags -------------------------------------------------------------------------------

    def payload(self) -> Any:
        return self.pick([
            None, None, None, "payload-text", {"color": "blue", "size": 3}, [1, "two", {"three": 3}], 42,
            3.14, True, False, 0, "", {"nested": {"list": [], "empty": {}}}, "ünïcödé ✓",
        ])

    def variants(self, n: int, *, with_off: bool = True, rich: bool = True) -> Dict[str, Dict[str, Any]]:
        """``n`` variants with values (some with payloads / metadata) and maybe an ``off`` default."""
        names = ["control", "treatment", "on", "variant-a", "variant-b", "variant-c", "blue", "green", "red",
                 "v4"]
        chosen = self.sample(names, n, n)
        variants: Dict[str, Dict[str, Any]] = {}
        for name in chosen:
            variant: Dict[str, Any] = {"key": name}
            if not rich or self.chance(0.9):
                variant["value"] = name if self.chance(0.8) else f"{name}-value"
            if rich and self.chance(0.35):
                variant["payload"] = self.payload()
            if rich and self.chance(0.15):
                variant["metadata"] = {self.pick(["evaluationId", "note", "bucketing"]): self.word()}
            variants[name] = variant
        if with_off:
            variants["off"] = {"key": "off", "metadata": {"default": True}}
        return variants

    def flag_metadata(self, flag_type: Optional[str] = None, minimal: bool = False) -> Dict[str, Any]:
        flag_type = flag_type or self.pick(["release", "release", "experiment", "mutual-exclusion-group",
                                            "holdout-group"])
        metadata: Dict[str, Any] = {"flagType": flag_type}
        if minimal:
            return metadata
        if self.chance(0.7):
            metadata["deployed"] = True
            metadata["evaluationMode"] = "local"
        if self.chance(0.8):
            metadata["flagVersion"] = self.rng.randint(1, 60)
        if flag_type == "experiment" and self.chance(0.8):
            metadata["experimentKey"] = f"exp-{self.rng.randint(1000, 9999)}"
        return dict(self.sample(list(metadata.items()), len(metadata), len(metadata)))

    def bucket(self, variant_keys: Sequence[str], selector: Optional[List[str]] = None) -> Dict[str, Any]:
        """A bucket with 1-3 allocations (maybe gaps) and distributions over ``variant_keys``."""
        if selector is None:
            selector = ["context", "user", "device_id" if self.chance(0.6) else "user_id"]
        cuts = sorted(set(self.sample(range(1, 100), 0, 2)))
        bounds = [0] + cuts + [100]
        allocations = []
        for start, end in zip(bounds, bounds[1:]):
            if self.chance(0.8) or len(bounds) == 2:
                if self.chance(0.2):
                    end = self.rng.randint(start + 1, end)  # partial allocation
                allocations.append({"range": [start, end], "distributions": self.distributions(variant_keys)})
        return {"selector": selector, "salt": self.random_word(), "allocations": allocations}

    def distributions(self, variant_keys: Sequence[str]) -> List[Dict[str, Any]]:
        keys = self.sample(variant_keys, 1, 3)
        cuts = sorted({self.rng.randrange(1, MAX_DISTRIBUTION) for _ in range(len(keys) - 1)})
        bounds = [0] + cuts + [MAX_DISTRIBUTION]
        out = []
        for key, start, end in zip(keys, bounds, bounds[1:]):
            if self.chance(0.05):
                end = start + (end - start) // 2  # a gap in the distribution
            out.append({"variant": key, "range": [start, end]})
        return out

    def conditions(self, attrs: Sequence[Attr], max_or: int = 3,
                   max_and: int = 3) -> List[List[Dict[str, Any]]]:
        groups = []
        for _ in range(self.rng.randint(1, max_or)):
            group = []
            for _ in range(self.rng.randint(1, max_and)):
                attr = self.pick(attrs)
                group.append(self.condition(attr, self.pick(self.ops_for(attr))))
            groups.append(group)
        return groups

    def segment_name(self) -> str:
        return self.pick(["Beta users", "Internal", "Power users", "EU", "Mobile", "All Other Users",
                          "Segment 1", "Sticky bucketing", "Holdout", "Targeted"])


# --------------------------------------------------------------------------------------------
# Suites.


@dataclass
class Suite:
    """Flags and cases of one suite, before the reference has been asked."""

    name: str
    flags: List[Dict[str, Any]]
    cases: List[Dict[str, Any]]  # {"user", "flag_keys"}
    probe: Dict[str, str] = field(default_factory=dict)  # single-condition flag -> operator (coverage)


def short(name: str) -> str:
    """Short flag-key prefix of a suite: ``operators-string-1`` -> ``str1``."""
    base, _, number = name.rpartition("-")
    return SUITE_PREFIXES[base] + number if number.isdigit() else SUITE_PREFIXES[name]


def flag_keys_choice(g: Gen, keys: Sequence[str], p_all: float = 0.75) -> Optional[List[str]]:
    r = g.rng.random()
    if r < p_all:
        return None
    if r < p_all + (1 - p_all) * 0.65:
        return g.sample(keys, 1, 4)
    if r < p_all + (1 - p_all) * 0.8:
        return []
    chosen = g.sample(keys, 0, 2) + [f"unknown-{g.random_word()}" for _ in range(g.rng.randint(1, 2))]
    g.rng.shuffle(chosen)
    return chosen


def make_cases(g: Gen, flags: Sequence[Dict[str, Any]], attrs: Sequence[Attr], n: int,
               p_all: float = 0.65, missing: float = 0.2) -> List[Dict[str, Any]]:
    keys = [f["key"] for f in flags]
    return [{"user": g.user(attrs, missing=missing), "flag_keys": flag_keys_choice(g, keys, p_all)}
            for _ in range(n)]


def operator_suite(g: Gen, name: str, attrs: List[Attr], ops: Sequence[str], n_flags: int,
                   n_cases: int) -> Suite:
    """One single-condition flag per (attribute, operator): the result says whether it matched."""
    flags, probe = [], {}
    for i in range(n_flags):
        op = ops[i % len(ops)]
        attr = g.pick(attrs)
        key = f"{short(name)}-{i}-{OP_CODES[op]}"
        segments: List[Dict[str, Any]] = [{"conditions": [[g.condition(attr, op)]], "variant": "on"}]
        if g.chance(0.5):
            segments.append({"variant": "off"})
        flag: Dict[str, Any] = {
            "key": key,
            "variants": {"on": {"key": "on", "value": "on"},
                         "off": {"key": "off", "metadata": {"default": True}}},
            "segments": segments,
        }
        if g.chance(0.3):
            flag["metadata"] = g.flag_metadata(minimal=True)
        flags.append(flag)
        probe[key] = op
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases, p_all=0.7), probe)


def random_flag(g: Gen, key: str, attrs: Sequence[Attr], *, rich: bool = True) -> Dict[str, Any]:
    """A realistic flag: targeted segments, maybe buckets, a catch-all, metadata at every level."""
    flag_type = g.pick(["release", "release", "experiment", "experiment", "mutual-exclusion-group",
                        "holdout-group"])
    variants = g.variants(g.rng.randint(1, 4), with_off=g.chance(0.85), rich=rich)
    on_keys = [k for k in variants if k != "off"]
    segments: List[Dict[str, Any]] = []
    for _ in range(g.rng.randint(1, 3)):
        segment: Dict[str, Any] = {"conditions": g.conditions(attrs)}
        if g.chance(0.25):
            segment["bucket"] = g.bucket(on_keys)
            if g.chance(0.6):
                segment["variant"] = g.pick(list(variants))
        else:
            segment["variant"] = g.pick(on_keys)
        if g.chance(0.6):
            segment["metadata"] = {"segmentName": g.segment_name()}
        segments.append(segment)
    r = g.rng.random()
    if r < 0.55:
        segments.append({"variant": "off" if "off" in variants else g.pick(on_keys),
                         **({"metadata": {"segmentName": "All Other Users"}} if g.chance(0.4) else {})})
    elif r < 0.8:
        segments.append({"bucket": g.bucket(on_keys),
                         "variant": "off" if "off" in variants else g.pick(on_keys),
                         "metadata": {"segmentName": "All Other Users"}})
    flag: Dict[str, Any] = {"key": key, "variants": variants, "segments": segments}
    if g.chance(0.85):
        flag["metadata"] = g.flag_metadata(flag_type, minimal=not rich)
    return flag


def attrs_mixed(g: Gen, n: int) -> List[Attr]:
    kinds = ["str", "str", "num", "ver", "list", "jsonlist", "cohorts"]
    wheres = ["props", "props", "field", "group_name", "group_props"]
    out = []
    for _ in range(n):
        kind = g.pick(kinds)
        where = g.pick(wheres) if kind in ("str", "num", "ver") else "props"
        if where == "group_name" and kind != "str":
            where = "props"
        if where == "field" and kind == "num":
            where = "props"
        out.append(g.attr(kind, where))
    return dedupe_attrs(out)


def dedupe_attrs(attrs: Iterable[Attr]) -> List[Attr]:
    seen: Dict[Tuple[str, ...], Attr] = {}
    for attr in attrs:
        seen.setdefault(tuple(attr.selector), attr)
    return list(seen.values())


def mixed_suite(g: Gen, name: str, n_flags: int, n_cases: int, rich: bool = True) -> Suite:
    attrs = attrs_mixed(g, g.rng.randint(4, 8))
    keys = [f"{short(name)}-{i}" for i in range(n_flags)]
    keys[-1] = g.pick(UNICODE_FLAG_KEYS)  # flag keys are arbitrary strings
    flags = [random_flag(g, key, attrs, rich=rich) for key in keys]
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases))


def dependency_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Chains, diamonds and fan-outs over ``result`` selectors; flags listed in shuffled order."""
    attrs = attrs_mixed(g, 4)
    flags: List[Dict[str, Any]] = []

    def dep_condition(dep: Dict[str, Any]) -> Dict[str, Any]:
        what = g.pick(["key", "key", "value"])
        candidates = [v.get(what) for v in dep["variants"].values() if v.get(what)]
        values = g.sample(candidates, 1, 2) if candidates and g.chance(0.9) else [NONE]
        if g.chance(0.15):
            values.append(NONE)
        op = g.pick(["is", "is", "is not", "contains", "does not contain", "regex match"])
        if op == "regex match":
            plain = [re.escape(v) for v in values if v != NONE]
            values = ["^(" + "|".join(plain) + ")$"] if plain else [".*"]
        return {"selector": ["result", dep["key"], what], "op": op, "values": list(dict.fromkeys(values))}

    def make(key: str, deps: List[Dict[str, Any]]) -> Dict[str, Any]:
        flag = random_flag(g, key, attrs)
        if deps:
            flag["dependencies"] = [d["key"] for d in deps]
            for segment in flag["segments"]:
                if "conditions" in segment and g.chance(0.8):
                    group = [dep_condition(g.pick(deps))]
                    if g.chance(0.3):
                        group.append(g.condition(g.pick(attrs), g.pick(g.ops_for(g.pick(attrs)))))
                    if g.chance(0.5):
                        segment["conditions"].insert(0, group)  # an extra OR branch
                    else:
                        segment["conditions"][0] = group
            if not any("conditions" in s for s in flag["segments"]):
                first = {"conditions": [[dep_condition(deps[0])]], "variant": g.pick(list(flag["variants"]))}
                flag["segments"].insert(0, first)
        flags.append(flag)
        return flag

    # A chain a <- b <- c <- d.
    chain = [make(f"{short(name)}-chain-0", [])]
    for i in range(1, 4):
        chain.append(make(f"{short(name)}-chain-{i}", [chain[-1]]))
    # A diamond top <- left, right <- bottom (bottom also reads top directly).
    top = make(f"{short(name)}-diamond-top", [])
    left = make(f"{short(name)}-diamond-left", [top])
    right = make(f"{short(name)}-diamond-right", [top])
    make(f"{short(name)}-diamond-bottom", [left, right, top])
    # Fan-out from the chain's head, and a flag depending on two separate structures.
    for i in range(3):
        make(f"{short(name)}-fan-{i}", [chain[0]])
    make(f"{short(name)}-join", [chain[-1], left])
    # A flag that declares a dependency which does not exist (its result reads as null).
    ghost = {"key": f"{short(name)}-ghost", "variants": {"on": {"key": "on", "value": "on"}}}
    make(f"{short(name)}-dangling", [ghost])
    g.rng.shuffle(flags)
    check_flags(flags)
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases, p_all=0.6))


def metadata_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Overlapping metadata keys at flag, segment and variant level: variant wins, then segment."""
    attrs = attrs_mixed(g, 4)
    flags = []
    for i in range(10):
        flag = random_flag(g, f"{short(name)}-{i}", attrs)
        flag["metadata"] = {**g.flag_metadata(), "shared": "flag", "fromFlag": i, "level": "flag"}
        for j, segment in enumerate(flag["segments"]):
            segment["metadata"] = {"segmentName": g.segment_name(), "shared": "segment", "fromSegment": j}
            if g.chance(0.5):
                segment["metadata"]["level"] = "segment"
        for variant in flag["variants"].values():
            meta = dict(variant.get("metadata") or {})
            if g.chance(0.6):
                meta["shared"] = "variant"
            if g.chance(0.3):
                meta["flagType"] = "overridden-by-variant"
            if meta:
                variant["metadata"] = meta
        flags.append(flag)
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases))


def bucket_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Buckets with several allocations and distributions, over device_id, user_id and more."""
    attrs = attrs_mixed(g, 3)
    flags = []
    selectors = [["context", "user", "device_id"], ["context", "user", "user_id"],
                 ["context", "user", "user_properties", "plan"], ["context", "groups", "org", "group_name"]]
    for i in range(12):
        variants = g.variants(g.rng.randint(2, 4), rich=False)
        keys = [k for k in variants if k != "off"]
        segments: List[Dict[str, Any]] = []
        if g.chance(0.4):
            segments.append({"conditions": g.conditions(attrs, 2, 2), "bucket": g.bucket(keys),
                             "variant": "off", "metadata": {"segmentName": g.segment_name()}})
        selector = selectors[i % len(selectors)] if g.chance(0.8) else None
        segment: Dict[str, Any] = {"bucket": g.bucket(keys, selector),
                                   "metadata": {"segmentName": "All Other Users"}}
        if g.chance(0.7):
            segment["variant"] = "off"
        segments.append(segment)
        flag = {"key": f"{short(name)}-{i}", "variants": variants, "segments": segments,
                "metadata": g.flag_metadata("experiment", minimal=True)}
        flags.append(flag)
    attrs = attrs + [
        Attr(["context", "user", "user_properties", "plan"], "str", ["free", "pro", "team"]),
        Attr(["context", "groups", "org", "group_name"], "str", ["acme-1", "globex-2", "initech-3"]),
    ]
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases, missing=0.3))


def missing_variant_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Segments (and distributions) naming variants that are not in ``variants``."""
    attrs = attrs_mixed(g, 4)
    flags = []
    for i in range(10):
        flag = random_flag(g, f"{short(name)}-{i}", attrs)
        for segment in flag["segments"]:
            if "variant" in segment and g.chance(0.4):
                segment["variant"] = f"ghost-{g.random_word()}"
            if "bucket" in segment and g.chance(0.5):
                allocation = g.pick(segment["bucket"]["allocations"])
                g.pick(allocation["distributions"])["variant"] = f"ghost-{g.random_word()}"
        if i % 3 == 0:
            flag["segments"] = [{"variant": "missing"}]
        flags.append(flag)
    flags.append({"key": f"{short(name)}-no-segments", "variants": {"on": {"key": "on", "value": "on"}},
                  "segments": []})
    flags.append({"key": f"{short(name)}-empty-segment", "variants": {"on": {"key": "on", "value": "on"}},
                  "segments": [{}, {"metadata": {"segmentName": "no variant"}}, {"variant": "on"}]})
    flags.append({"key": f"{short(name)}-no-variants", "variants": {}, "segments": [{"variant": "on"}]})
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases))


def flag_keys_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Mostly explicit ``flag_keys``: subsets, empty lists, unknown keys, duplicates."""
    attrs = attrs_mixed(g, 4)
    flags = [random_flag(g, f"{short(name)}-{i}", attrs, rich=False) for i in range(8)]
    dependent = flags[3]
    dependent["dependencies"] = [flags[1]["key"]]
    condition = {"selector": ["result", flags[1]["key"], "key"], "op": "is not", "values": [NONE]}
    variant = "off" if "off" in dependent["variants"] else next(iter(dependent["variants"]))
    dependent["segments"].insert(0, {"conditions": [[condition]], "variant": variant})
    keys = [f["key"] for f in flags]
    cases = []
    for i in range(n_cases):
        user = g.user(attrs)
        r = i % 6
        if r == 0:
            flag_keys: Optional[List[str]] = None
        elif r == 1:
            flag_keys = []
        elif r == 2:
            flag_keys = g.sample(keys, 1, 3)
        elif r == 3:
            flag_keys = [f"nope-{g.random_word()}", "", "(none)"]
        elif r == 4:
            subset = g.sample(keys, 1, 2)
            flag_keys = subset + subset  # duplicates
        else:
            flag_keys = [keys[3]] + ([f"unknown-{g.random_word()}"] if g.chance(0.5) else [])
        cases.append({"user": user, "flag_keys": flag_keys})
    check_flags(flags)
    return Suite(name, flags, cases)


def list_operators_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Lists and JSON-array strings under set and non-set operators; set operators on scalars."""
    attrs = [g.attr("list"), g.attr("list"), g.attr("jsonlist"), g.attr("cohorts"),
             g.attr("str"), g.attr("num"), g.attr("list", "group_props")]
    attrs = dedupe_attrs(attrs)
    ops = SET_OPS + STRING_OPS + REGEX_OPS + COMPARISON_OPS
    flags, probe = [], {}
    i = 0
    for attr in attrs:
        for op in g.sample(ops, 5, 8):
            key = f"{short(name)}-{i}-{OP_CODES[op]}"
            flags.append({"key": key, "variants": {"on": {"key": "on", "value": "on"}},
                          "segments": [{"conditions": [[g.condition(attr, op)]], "variant": "on"}]})
            probe[key] = op
            i += 1
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases, p_all=0.85, missing=0.15), probe)


def none_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """``(none)`` in condition values against missing and present values, for every operator."""
    attrs = attrs_mixed(g, 6)
    flags, probe = [], {}
    for i, op in enumerate(ALL_OPS):
        attr = g.pick(attrs)
        values = [NONE] if g.chance(0.5) else [NONE] + g.values_for(attr, op)
        if op in REGEX_OPS and g.chance(0.5):
            values = g.values_for(attr, op)  # a regex against a missing value
        key = f"{short(name)}-{i}-{OP_CODES[op]}"
        condition = {"selector": attr.selector, "op": op, "values": list(dict.fromkeys(values))}
        flags.append({"key": key, "variants": {"on": {"key": "on", "value": "on"}},
                      "segments": [{"conditions": [[condition]], "variant": "on"}]})
        probe[key] = op
    return Suite(name, flags, make_cases(g, flags, attrs, n_cases, p_all=0.9, missing=0.6), probe)


def bucketing_suite() -> Suite:
    """Exact bucketing vectors: a 50/50 experiment and a 3-way split with a 90% allocation."""
    fifty = {
        "key": "bucketing-50-50",
        "metadata": {"flagType": "experiment", "flagVersion": 4},
        "variants": {
            "off": {"key": "off", "metadata": {"default": True}},
            "control": {"key": "control", "value": "control"},
            "treatment": {"key": "treatment", "value": "treatment"},
        },
        "segments": [{
            "bucket": {"selector": ["context", "user", "device_id"], "salt": "x8Kf2pQz",
                       "allocations": [{"range": [0, 100], "distributions": [
                           {"variant": "control", "range": [0, 21474837]},
                           {"variant": "treatment", "range": [21474837, MAX_DISTRIBUTION]}]}]},
            "variant": "off",
        }],
    }
    third = MAX_DISTRIBUTION // 3
    three = {
        "key": "bucketing-3-way",
        "variants": {
            "off": {"key": "off", "metadata": {"default": True}},
            "a": {"key": "a", "value": "a"},
            "b": {"key": "b", "value": "b"},
            "c": {"key": "c", "value": "c"},
        },
        "segments": [{
            "bucket": {"selector": ["context", "user", "device_id"], "salt": "3way-salt",
                       "allocations": [{"range": [0, 90], "distributions": [
                           {"variant": "a", "range": [0, third]},
                           {"variant": "b", "range": [third, 2 * third]},
                           {"variant": "c", "range": [2 * third, MAX_DISTRIBUTION]}]}]},
            "variant": "off",
        }],
    }
    cases = [{"user": {"device_id": f"device-{i}"}, "flag_keys": None} for i in range(2000)]
    return Suite("bucketing", [fifty, three], cases)


# --------------------------------------------------------------------------------------------
# List elements: every operator against lists holding booleans, numbers, nulls, duplicates,
# mixed case, padded strings and empty lists (issue 10 point 3).
#
# These inputs leave the region where the reference and our engine agree (see check_user), so
# for each (case, flag) the reference is asked about an equivalent input and the case records
# the design.md §4 correction applied, as ``"corrections": {flag key: letter}``:
#
#   b  Booleans coerce to "true"/"false". The reference writes True as "True", so it is sent
#      the strings "true"/"false" in their place (in lists and in JSON-array strings alike):
#      its answer is then the one for our coercion.
#   e  A set operator on a list with no elements (empty, only nulls, "[]", "[null]") applies to
#      the empty set. The reference answers as for a null property (or False), so it is sent
#      [NO_ELEMENT], one element equal to no condition value, which gives exactly the empty-set
#      answer for all six set operators because the condition values are never empty here.
#   a  The empty list is a value, not null: under a non-set operator no element matches, so the
#      condition is false. The reference treats [] as null; it is sent no value for that
#      property and the flag's expected result is its "off" variant.
#
# Each flag reads its own property, so a correction for one flag never changes another's input.

NO_ELEMENT = "\u0000no element"
ELEMENT_POOL: List[Any] = [
    "a", "A", " a", "a ", "b", "B", "true", "TRUE", "True", "false", "FALSE", True, False, None, None,
    1, 2, 0, -3, 1.5, 1.0, "1", "1.0", "01", "1.2.3", "1.10.0", "", "(none)",
]
CONDITION_POOLS: Dict[str, List[str]] = {
    "string": ["a", "A", " a", "a ", "b", "true", "TRUE", "True", "false", "FALSE", "1", "1.0", "0", "(none)", ""],
    "contains": ["a", "A", "rue", "1", " ", "b", "TRUE"],
    "comparison": ["1", "1.5", "0", "-3", "a", "true", "2", "1.0"],
    "version": ["1.2.3", "1.10.0", "1.2", "2.0.0-beta", "a", "1.0.0"],
    "regex": ["^a$", "(?i)^true$", "^\\d+$", "^$", " ", "A", "^1\\.0$", "^[Tt]rue$"],
}
LIST_OFF = {"key": "off", "metadata": {"default": True}}


def _condition_pool(op: str) -> List[str]:
    if op in ("contains", "does not contain"):
        return CONDITION_POOLS["contains"]
    if op in COMPARISON_OPS:
        return CONDITION_POOLS["comparison"]
    if op in VERSION_OPS:
        return CONDITION_POOLS["version"]
    if op in REGEX_OPS:
        return CONDITION_POOLS["regex"]
    return CONDITION_POOLS["string"]


def element_list(g: Gen) -> List[Any]:
    """0-5 elements drawn with replacement (so duplicates are common); sometimes only nulls."""
    r = g.rng.random()
    if r < 0.08:
        return []
    if r < 0.13:
        return [None] * g.rng.randint(1, 2)
    items = [g.pick(ELEMENT_POOL) for _ in range(g.rng.randint(1, 5))]
    if g.chance(0.3):
        items.append(g.pick(items))  # an explicit duplicate
    return items


def list_value(g: Gen) -> Any:
    """A list, or the same list as a JSON-array string (sometimes padded, so a plain string)."""
    items = element_list(g)
    r = g.rng.random()
    if r < 0.7:
        return items
    text = json.dumps(items, separators=(",", ":") if g.chance(0.5) else None)
    return " " + text if r > 0.95 else text


def _reference_items(value: Any) -> Optional[List[Any]]:
    """The elements the reference would see in ``value`` (a list or JSON-array string), else None."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("["):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, list) else None
    return None


def reference_value(value: Any, op: str) -> Tuple[Any, Optional[str]]:
    """What the reference is sent for ``value`` under ``op``, and the correction applied.

    Returns ``(MISSING, "a")`` when the reference is not asked (see the section comment).
    """
    items = _reference_items(value)
    if items is None:
        return value, None
    if not [i for i in items if i is not None]:
        if op in SET_OPS:
            return [NO_ELEMENT], "e"
        if value == []:
            return MISSING, "a"
        return value, None
    if not any(isinstance(i, bool) for i in items):
        return value, None
    swapped = [("true" if i else "false") if isinstance(i, bool) else i for i in items]
    return (swapped if isinstance(value, list) else json.dumps(swapped)), "b"


MISSING: Any = object()


def list_elements_suite(g: Gen, name: str, n_cases: int) -> Suite:
    """Two single-condition flags per operator, each on its own list property."""
    flags: List[Dict[str, Any]] = []
    probe: Dict[str, str] = {}
    for i, op in enumerate(ALL_OPS * 2):
        key = f"{short(name)}-{i}-{OP_CODES[op]}"
        values = [g.pick(_condition_pool(op)) for _ in range(g.rng.randint(1, 3))]
        if op not in SET_OPS:
            values = list(dict.fromkeys(values))  # duplicates matter only to set contains
        cond = {"selector": ["context", "user", "user_properties", f"p{i}"], "op": op, "values": values}
        flags.append({"key": key, "variants": {"on": {"key": "on", "value": "on"}, "off": LIST_OFF},
                      "segments": [{"conditions": [[cond]], "variant": "on"}, {"variant": "off"}]})
        probe[key] = op
    check_flags(flags)
    cases = []
    for _ in range(n_cases):
        props = {f"p{i}": list_value(g) for i in range(len(flags)) if not g.chance(0.1)}
        sent: Dict[str, Any] = {}
        corrections: Dict[str, str] = {}
        for i, flag in enumerate(flags):
            prop = f"p{i}"
            if prop not in props:
                continue
            value, letter = reference_value(props[prop], flag["segments"][0]["conditions"][0][0]["op"])
            if value is not MISSING:
                sent[prop] = value
            if letter:
                corrections[flag["key"]] = letter
        case: Dict[str, Any] = {"user": {"user_id": f"user-{g.serial()}", "user_properties": props},
                                "flag_keys": None}
        if corrections:
            case["corrections"] = corrections
            case["reference_user"] = {"user_id": case["user"]["user_id"], "user_properties": sent}
        cases.append(case)
    return Suite(name, flags, cases, probe)


def build_suites(g: Gen) -> List[Suite]:
    """Every suite, in a fixed order (the order consumes the seeded generator)."""
    suites: List[Suite] = []
    for n in range(3):
        attrs = dedupe_attrs([g.attr("str", "field"), g.attr("str", "field"), g.attr("str"), g.attr("str"),
                              g.attr("str", "group_name")])
        suites.append(operator_suite(g, f"operators-string-{n}", attrs, STRING_OPS + REGEX_OPS, 14, 50))
    for n in range(3):
        attrs = dedupe_attrs([g.attr("num"), g.attr("num"), g.attr("str"), g.attr("num", "group_props")])
        ops = COMPARISON_OPS + ["is", "is not"]
        suites.append(operator_suite(g, f"operators-comparison-{n}", attrs, ops, 14, 50))
    for n in range(3):
        attrs = dedupe_attrs([g.attr("ver", "field"), g.attr("ver"), g.attr("ver"), g.attr("num")])
        ops = VERSION_OPS + COMPARISON_OPS[:1]
        suites.append(operator_suite(g, f"operators-version-{n}", attrs, ops, 14, 50))
    for n in range(3):
        attrs = dedupe_attrs([g.attr("list"), g.attr("jsonlist"), g.attr("cohorts"),
                              g.attr("list", "group_props")])
        suites.append(operator_suite(g, f"operators-set-{n}", attrs, SET_OPS, 14, 45))
    for n in range(2):
        attrs = attrs_mixed(g, 6)
        suites.append(operator_suite(g, f"operators-regex-{n}", attrs, REGEX_OPS, 12, 45))
    for n in range(2):
        suites.append(list_operators_suite(g, f"lists-{n}", 40))
    suites.append(none_suite(g, "none-values", 80))
    for n in range(2):
        attrs = dedupe_attrs([g.attr("str", "group_name"), g.attr("str", "group_name"),
                              g.attr("str", "group_props"), g.attr("num", "group_props"),
                              g.attr("list", "group_props"), g.attr("str")])
        flags = [random_flag(g, f"groups-{n}-{i}", attrs, rich=False) for i in range(10)]
        suites.append(Suite(f"groups-{n}", flags, make_cases(g, flags, attrs, 60)))
    for n in range(3):
        suites.append(dependency_suite(g, f"dependencies-{n}", 50))
    suites.append(flag_keys_suite(g, "flag-keys", 90))
    suites.append(metadata_suite(g, "metadata-merge", 40))
    for n in range(2):
        suites.append(bucket_suite(g, f"buckets-{n}", 60))
    suites.append(missing_variant_suite(g, "missing-variants", 50))
    for n in range(8):
        suites.append(mixed_suite(g, f"mixed-{n}", 10, 40, rich=n % 2 == 0))
    suites.append(bucketing_suite())
    # A generator of their own, so adding these suites left every suite above unchanged.
    lists = Gen(g.seed + 1)
    for n in range(2):
        suites.append(list_elements_suite(lists, f"list-elements-{n}", 60))
    for suite in suites:
        check_flags(suite.flags)
    return suites


# --------------------------------------------------------------------------------------------
# Running the reference and writing the fixture.


def run_oracle(reference_python: str, suite: Suite) -> List[Dict[str, Any]]:
    """Evaluate every case of a suite with the reference (one process per suite)."""
    sent = [{"user": c.get("reference_user", c["user"]), "flag_keys": c["flag_keys"]} for c in suite.cases]
    request = json.dumps({"flags": suite.flags, "cases": sent})
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([reference_python, str(ORACLE)], input=request, capture_output=True, text=True,
                          env=env, check=False, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"oracle failed on suite {suite.name}:\n{proc.stderr}")
    results = json.loads(proc.stdout)
    assert len(results) == len(suite.cases)
    return results


def finish_suite(suite: Suite, results: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], List[str]]:
    """Attach expectations; drop (and report) cases where the reference raised."""
    cases, dropped = [], []
    for case, result in zip(suite.cases, results):
        if "error" in result and not isinstance(result["error"], dict):
            dropped.append(f"{suite.name}: {result['error']}")
            continue
        ordered = case["flag_keys"] is None
        expected = result if ordered else dict(sorted(result.items()))
        done = {"user": case["user"], "flag_keys": case["flag_keys"], "expected": expected, "ordered": ordered}
        if "corrections" in case:
            done["corrections"] = case["corrections"]
            for key, letter in case["corrections"].items():
                if letter == "a":  # see list_elements_suite: the condition is false
                    expected[key] = {"key": "off", "value": None, "payload": None, "metadata": {"default": True}}
        cases.append(done)
    return {"name": suite.name, "flags": suite.flags, "cases": cases}, dropped


def coverage(suites: Sequence[Suite], finished: Sequence[Dict[str, Any]]) -> Dict[str, List[int]]:
    """Per operator: how many (single-condition flag, case) pairs matched and did not match."""
    counts: Dict[str, List[int]] = defaultdict(lambda: [0, 0])
    for suite, done in zip(suites, finished):
        for case in done["cases"]:
            considered = suite.probe.keys()
            if case["flag_keys"] is not None:
                considered = set(case["flag_keys"]) & suite.probe.keys()
            for key in considered:
                matched = case["expected"].get(key, {}).get("key") == "on"
                counts[suite.probe[key]][0 if matched else 1] += 1
    return counts


def dump(document: Dict[str, Any]) -> str:
    """JSON with one flag or case per line: compact, yet diff-friendly."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def rows(items: List[Any]) -> List[str]:
        return [f"      {one(item)}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items)]

    lines = ["{"]
    for name in ("generated_by", "reference", "seed", "note"):
        lines.append(f"  {one(name)}: {one(document[name])},")
    lines.append('  "suites": [')
    for s, suite in enumerate(document["suites"]):
        lines.append(f'    {{"name": {one(suite["name"])},')
        lines.append('     "flags": [')
        lines.extend(rows(suite["flags"]))
        lines.append("     ],")
        lines.append('     "cases": [')
        lines.extend(rows(suite["cases"]))
        lines.append("     ]}" + ("," if s < len(document["suites"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", default=DEFAULT_REFERENCE_PYTHON,
                        help="python of a venv with amplitude-experiment==1.13.0 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    suites = build_suites(Gen(args.seed))
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        all_results = list(pool.map(lambda s: run_oracle(args.reference_python, s), suites))
    finished, dropped = [], []
    for suite, results in zip(suites, all_results):
        done, lost = finish_suite(suite, results)
        finished.append(done)
        dropped.extend(lost)

    document = {
        "generated_by": "scripts/generate_conformance.py",
        "reference": REFERENCE,
        "seed": args.seed,
        "note": "ordered=false: flag_keys given; the reference iterates a set, so compare key sets only "
                "(expected is stored sorted by flag key). corrections: {flag: letter of design.md §4} where the "
                "reference was asked about an equivalent input (see scripts/generate_conformance.py).",
        "suites": finished,
    }
    text = dump(document)
    assert json.loads(text) == json.loads(json.dumps(document))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")

    n_flags = sum(len(s["flags"]) for s in finished)
    n_cases = sum(len(s["cases"]) for s in finished)
    print(f"wrote {args.output} ({len(text.encode()) / 1e6:.2f} MB): {len(finished)} suites, "
          f"{n_flags} flags, {n_cases} cases", file=sys.stderr)
    cov = coverage(suites, finished)
    for op in ALL_OPS:
        matched, unmatched = cov.get(op, [0, 0])
        flag = "" if matched and unmatched else "   <-- not covered both ways"
        print(f"  {op:26s} matched {matched:5d}  not matched {unmatched:5d}{flag}", file=sys.stderr)
    for line in dropped:
        print(f"  dropped: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
