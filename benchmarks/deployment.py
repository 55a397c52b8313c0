"""Deterministic, realistic flag deployments (v2 flag JSON) and users for benchmarks.

Everything here is plain data: lists of flag dicts exactly as the flags endpoint
(``/sdk/v2/flags``) returns them once decoded, and ``User`` keyword-argument dicts.
The same seed always gives the same output, so the official SDK and ours evaluate
identical inputs.

Flag schema (the subset used here)::

    flag     {key, variants: {key: {key, value?, payload?, metadata?}},
              segments: [segment], dependencies?: [flag key], metadata?}
    segment  {conditions?: [[condition]], bucket?, variant?, metadata?}
             (conditions: outer list OR-ed, inner lists AND-ed)
    condition {selector: [str], op: str, values: [str]}
    bucket   {selector: ["context", "user", "device_id"], salt,
              allocations: [{range: [start, end], distributions: [{variant, range: [start, end)}]}]}

Distribution ranges partition ``0 .. BUCKET_SPACE`` (42949673); allocation ranges
are percentages (0..100) of the hashed id.
"""

from __future__ import annotations

import random
import string
from typing import Any, Dict, List, Optional, Sequence

Flag = Dict[str, Any]
Segment = Dict[str, Any]
Condition = Dict[str, Any]

#: Upper bound (exclusive) of distribution ranges.
BUCKET_SPACE = 42949673

DEFAULT_SEED = 20240601

#: Off variant as the Amplitude flags API returns it.
OFF_VARIANT: Dict[str, Any] = {"key": "off", "metadata": {"default": True}}

COUNTRIES = [
    "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE", "GB", "IE", "FR", "DE", "NL", "BE", "ES", "PT",
    "IT", "CH", "AT", "SE", "NO", "DK", "FI", "PL", "CZ", "GR", "TR", "IL", "AE", "SA", "EG", "NG",
    "ZA", "KE", "IN", "PK", "BD", "CN", "JP", "KR", "TW", "HK", "SG", "MY", "TH", "VN", "PH", "ID",
    "AU", "NZ",
]  # fmt: skip
PLATFORMS = ["iOS", "Android", "Web"]
PLANS = ["free", "free", "free", "starter", "pro", "pro", "team", "enterprise"]
TAGS = ["beta", "early-access", "power-user", "churn-risk", "newsletter", "mobile-first", "trial", "vip"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "corp.example", "example.org", "icloud.com"]
FEATURES = [
    "checkout", "search", "onboarding", "pricing-page", "recommendations", "dark-mode", "sidebar",
    "notifications", "profile", "export", "billing", "dashboard", "editor", "sharing", "comments",
    "invite-flow", "paywall", "home-feed", "settings", "cart", "wishlist", "chat", "reports", "upload",
]  # fmt: skip


# ----------------------------------------------------------------------------- building blocks


def condition(selector: Sequence[str], op: str, values: Sequence[str]) -> Condition:
    return {"selector": list(selector), "op": op, "values": list(values)}


def user_selector(*path: str) -> List[str]:
    return ["context", "user", *path]


def bucket(
    salt: str,
    weights: Dict[str, int],
    allocation_percent: int = 100,
    selector: Sequence[str] = ("context", "user", "device_id"),
) -> Dict[str, Any]:
    """A bucket that allocates ``allocation_percent`` % of ids, split between variants by weight."""
    total = sum(weights.values())
    distributions = []
    start = 0
    items = list(weights.items())
    for index, (variant, weight) in enumerate(items):
        end = BUCKET_SPACE if index == len(items) - 1 else start + BUCKET_SPACE * weight // total
        distributions.append({"variant": variant, "range": [start, end]})
        start = end
    return {
        "selector": list(selector),
        "salt": salt,
        "allocations": [{"range": [0, allocation_percent], "distributions": distributions}],
    }


def _salt(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(8))


def _all_other_users(variant: str = "off", bucket_: Optional[Dict[str, Any]] = None) -> Segment:
    segment: Segment = {"metadata": {"segmentName": "All Other Users"}, "variant": variant}
    if bucket_ is not None:
        segment["bucket"] = bucket_
    return segment


def _flag_metadata(
    rng: random.Random, flag_type: str, experiment_key: Optional[str] = None
) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {
        "deployed": True,
        "evaluationMode": "local",
        "flagType": flag_type,
        "flagVersion": rng.randint(1, 60),
    }
    if experiment_key is not None:
        metadata["experimentKey"] = experiment_key
    return metadata


def _random_targeting(rng: random.Random) -> List[List[Condition]]:
    """One realistic targeting rule (an OR of AND-groups) from the mix seen in real projects."""
    kind = rng.choice(["country", "plan", "version", "email", "regex", "tags", "combo"])
    if kind == "country":
        return [[condition(user_selector("country"), "is", rng.sample(COUNTRIES, 20))]]
    if kind == "plan":
        return [[condition(user_selector("user_properties", "plan"), "is", rng.sample(PLANS[3:], 2))]]
    if kind == "version":
        return [[condition(user_selector("version"), "version greater or equal", ["4.2.0"])]]
    if kind == "email":
        return [[condition(user_selector("user_properties", "email"), "contains", ["@corp.example"])]]
    if kind == "regex":
        pattern = r"^[a-m].*@(gmail|yahoo)\.com$"
        return [[condition(user_selector("user_properties", "email"), "regex match", [pattern])]]
    if kind == "tags":
        tags = rng.sample(TAGS, 2)
        return [[condition(user_selector("user_properties", "tags"), "set contains any", tags)]]
    # combo: internal users OR (country list AND new enough app version AND a paying plan)
    return [
        [condition(user_selector("user_properties", "email"), "contains", ["@corp.example"])],
        [
            condition(user_selector("country"), "is", rng.sample(COUNTRIES, 20)),
            condition(user_selector("version"), "version greater or equal", ["4.2.0"]),
            condition(user_selector("user_properties", "plan"), "is not", ["free"]),
        ],
    ]


# ----------------------------------------------------------------------------- flag kinds


def _on_off_variants() -> Dict[str, Any]:
    return {"on": {"key": "on", "value": "on"}, "off": dict(OFF_VARIANT)}


def release_flag(rng: random.Random, key: str) -> Flag:
    """Targeting rules (1-3 segments) serving ``on``, then a percentage rollout, then off."""
    segments: List[Segment] = []
    for index in range(rng.randint(1, 3)):
        segments.append(
            {
                "conditions": _random_targeting(rng),
                "variant": "on",
                "metadata": {"segmentName": f"Targeted users {index + 1}"},
            }
        )
    rollout = rng.choice([5, 10, 25, 50, 75, 100])
    segments.append(
        {
            "bucket": bucket(_salt(rng), {"on": 1}, allocation_percent=rollout),
            "metadata": {"segmentName": f"Rollout {rollout}%"},
            "variant": "off",
        }
    )
    return {
        "key": key,
        "variants": _on_off_variants(),
        "segments": segments,
        "metadata": _flag_metadata(rng, "release"),
    }


def simple_flag(rng: random.Random, key: str) -> Flag:
    """A plain on/off switch: everybody gets ``on`` (or everybody ``off``)."""
    return {
        "key": key,
        "variants": _on_off_variants(),
        "segments": [_all_other_users(rng.choice(["on", "on", "off"]))],
        "metadata": _flag_metadata(rng, "release"),
    }


def _payload(rng: random.Random, variant: str) -> Dict[str, Any]:
    return {
        "variant": variant,
        "color": rng.choice(["#1e88e5", "#43a047", "#e53935", "#fdd835"]),
        "limits": {"items": rng.randint(1, 50), "ratio": round(rng.random(), 3)},
        "copy": {"title": f"Try {variant}", "cta": rng.choice(["Buy now", "Start trial", "Learn more"])},
        "enabled_modules": rng.sample(FEATURES, 3),
    }


def experiment_flag(
    rng: random.Random,
    key: str,
    extra_conditions: Optional[List[Condition]] = None,
) -> Flag:
    """2-4 variants with payloads; 1-2 bucketed targeting segments, then a bucketed all-users segment.

    ``extra_conditions`` (e.g. a mutual-exclusion slot) are AND-ed into every segment.
    """
    names = ["control", "treatment", "treatment-b", "treatment-c"][: rng.randint(2, 4)]
    variants: Dict[str, Any] = {
        name: {"key": name, "value": name, "payload": _payload(rng, name)} for name in names
    }
    variants["off"] = dict(OFF_VARIANT)
    weights = dict.fromkeys(names, 1)
    extra = list(extra_conditions or [])

    segments: List[Segment] = []
    for index in range(rng.randint(1, 2)):
        segments.append(
            {
                "conditions": [group + extra for group in _random_targeting(rng)],
                "bucket": bucket(_salt(rng), weights, allocation_percent=100),
                "metadata": {"segmentName": f"Targeting segment {index + 1}"},
                "variant": "off",
            }
        )
    all_users: Segment = {
        "bucket": bucket(_salt(rng), weights, allocation_percent=rng.choice([20, 50, 80, 100])),
        "metadata": {"segmentName": "All Other Users"},
        "variant": "off",
    }
    if extra:
        all_users["conditions"] = [extra]
    segments.append(all_users)
    return {
        "key": key,
        "variants": variants,
        "segments": segments,
        "metadata": _flag_metadata(rng, "experiment", experiment_key=f"exp-{rng.randint(10000, 99999)}"),
    }


def dependent_flag(rng: random.Random, key: str, parent: str) -> Flag:
    """A release flag that is on only for users who got ``on`` from ``parent``."""
    flag = release_flag(rng, key)
    gate = condition(["result", parent, "key"], "is", ["on"])
    for segment in flag["segments"]:
        groups = segment.get("conditions") or [[]]
        segment["conditions"] = [[gate, *group] for group in groups]
    flag["dependencies"] = [parent]
    return flag


def mutex_group_flag(rng: random.Random, key: str, slots: int) -> Flag:
    """A mutual-exclusion group: every device is bucketed into exactly one slot."""
    names = [f"slot-{index + 1}" for index in range(slots)]
    variants: Dict[str, Any] = {name: {"key": name, "value": name} for name in names}
    variants["off"] = dict(OFF_VARIANT)
    return {
        "key": key,
        "variants": variants,
        "segments": [_all_other_users("off", bucket(_salt(rng), dict.fromkeys(names, 1)))],
        "metadata": _flag_metadata(rng, "mutual-exclusion-group"),
    }


def mutex_member_experiment(rng: random.Random, key: str, group: str, slot: str) -> Flag:
    flag = experiment_flag(rng, key, extra_conditions=[condition(["result", group, "key"], "is", [slot])])
    flag["dependencies"] = [group]
    return flag


# ----------------------------------------------------------------------------- deployments


def _mix(n: int) -> Dict[str, int]:
    """How many flags of each kind a project of ``n`` flags has (scaled from a 40-flag project)."""
    counts = {
        "mutex_groups": round(n * 2 / 40),
        "release": round(n * 15 / 40),
        "experiments": round(n * 15 / 40),
        "dependent": round(n * 5 / 40),
    }
    counts["mutex_groups"] = min(counts["mutex_groups"], counts["experiments"] // 2)
    while sum(counts.values()) > n:  # tiny n: drop from the biggest kinds first
        biggest = max(counts, key=lambda kind: counts[kind])
        counts[biggest] -= 1
    counts["simple"] = n - sum(counts.values())
    return counts


def realistic_deployment(n: int = 40, seed: int = DEFAULT_SEED) -> List[Flag]:
    """``n`` flags mixed like a real project, in a shuffled (server-like, not sorted) order.

    For ``n=40``: 2 mutual-exclusion groups (2 slots each, every slot holding one
    experiment), 15 release flags with targeting + rollout, 15 experiments (4 of them
    inside mutual-exclusion groups), 5 flags depending on release flags
    (``["result", parent, "key"]`` conditions) and 3 simple on/off flags.
    """
    rng = random.Random(seed)
    counts = _mix(n)
    flags: List[Flag] = []
    used: Dict[str, int] = {}

    def new_key(prefix: str) -> str:
        base = f"{prefix}-{rng.choice(FEATURES)}"
        used[base] = used.get(base, 0) + 1
        return base if used[base] == 1 else f"{base}-{used[base]}"

    releases = [release_flag(rng, new_key("release")) for _ in range(counts["release"])]
    flags += releases

    experiments_left = counts["experiments"]
    for _ in range(counts["mutex_groups"]):
        group = mutex_group_flag(rng, new_key("mutex-group"), slots=2)
        flags.append(group)
        for slot in group["variants"]:
            if slot != "off" and experiments_left > 0:
                flags.append(mutex_member_experiment(rng, new_key("exp"), group["key"], slot))
                experiments_left -= 1
    flags += [experiment_flag(rng, new_key("exp")) for _ in range(experiments_left)]

    parents = releases or flags
    for _ in range(counts["dependent"]):
        if parents:
            flags.append(dependent_flag(rng, new_key("release-dep"), rng.choice(parents)["key"]))
        else:
            flags.append(simple_flag(rng, new_key("switch")))
    flags += [simple_flag(rng, new_key("switch")) for _ in range(counts["simple"])]

    rng.shuffle(flags)
    return flags


def single_rollout_flag(seed: int = DEFAULT_SEED) -> List[Flag]:
    """One flag, one segment, no conditions: a 50/50 on/off bucket on device_id."""
    rng = random.Random(seed)
    return [
        {
            "key": "rollout-new-checkout",
            "variants": _on_off_variants(),
            "segments": [
                {
                    "bucket": bucket(_salt(rng), {"on": 1, "off": 1}),
                    "metadata": {"segmentName": "All Other Users"},
                }
            ],
            "metadata": _flag_metadata(rng, "release"),
        }
    ]


def many_flags(n: int = 1000, seed: int = DEFAULT_SEED) -> List[Flag]:
    """A big project: ``n`` flags with the same mix as :func:`realistic_deployment`."""
    return realistic_deployment(n, seed=seed)


def realistic_users(n: int, seed: int = DEFAULT_SEED) -> List[Dict[str, Any]]:
    """``n`` ``User(**kwargs)`` dicts: ids, country, platform, app version and user properties."""
    rng = random.Random(seed + 1)
    users = []
    for index in range(n):
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9)))
        properties: Dict[str, Any] = {
            "plan": rng.choice(PLANS),
            "email": f"{name}{index}@{rng.choice(EMAIL_DOMAINS)}",
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "age": rng.randint(16, 80),
        }
        users.append(
            {
                "user_id": f"user-{index:06d}" if rng.random() < 0.8 else None,  # 20% anonymous
                "device_id": f"{rng.getrandbits(64):016x}-{index}",
                "country": rng.choice(COUNTRIES),
                "platform": rng.choice(PLATFORMS),
                "version": f"{rng.randint(3, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
                "user_properties": properties,
            }
        )
    return users

