"""The levers of a preset, generated from the scenario schema: every parameter the
resolved preset has, with its unit, range, description and current value, grouped as the
page shows them."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from credsim.scenario import reference as ref
from credsim.scenario.model import Scenario

# The page's groups, by the first part of a key.
GROUPS = {
    "run": "run", "demography": "demography", "population": "society", "graph": "society",
    "feedback": "society",
    "safeguards": "safeguards", "threats": "threats", "adaptation": "adaptation",
}
GROUP_ORDER = ("run", "demography", "society", "system", "safeguards", "threats",
               "adaptation")
# Shown up front, as sliders, where the preset has them; the rest sit behind "more".
COMMON = (
    "run.people", "run.days", "run.seed", "demography.enabled",
    "channels.court.false_rate", "population.group_shares",
    "points.warn_max", "court_list.grace_days", "composite.opt_in", "rating.status_bias",
    "safeguards.notice_days", "safeguards.review_capacity", "safeguards.expiry_days",
    "safeguards.proportionality_cap", "safeguards.domain_separation",
    "court_list.appeal_prob",
    "threats.insiders_per_million", "threats.insider_target", "threats.audit_prob",
    "threats.informant_rate",
    "adaptation.enabled", "adaptation.chilling", "adaptation.deterrence",
)
# Sliders on keys with a huge or open range use this instead.
SLIDER_RANGE = {
    "run.people": (1_000, 1_000_000), "run.days": (30, 1_825),
    "safeguards.review_capacity": (0, 1_000), "safeguards.expiry_days": (0, 1_095),
    "safeguards.proportionality_cap": (0, 200), "safeguards.notice_days": (0, 90),
    "threats.insiders_per_million": (0, 500), "threats.informant_rate": (0, 0.01),
    "points.warn_max": (0, 100), "court_list.grace_days": (0, 180),
    "channels.court.false_rate": (0, 0.0001),
}
LOG_SLIDERS = {"run.people"}
# Up front even while off: the switch that turns a section on.
SWITCHES = {"demography.enabled"}


@cache
def _parameters() -> dict[str, ref.Parameter]:
    return {p.key: p for p in ref.parameters()}


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every parameter in resolved scenario data: a table is a
    value when the schema has it as one parameter (points.deltas), else it is walked."""
    params = _parameters()
    out: list[tuple[str, Any]] = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and ref._generic(key) not in params:
            out += flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _field(generic: str):
    """The Pydantic field of a generic dotted key, or None (systems of packages)."""
    model: type[BaseModel] = Scenario
    parts = generic.split(".")
    i = 0
    while i < len(parts):
        name = parts[i]
        if model is Scenario and name in ref.KEYED:
            model, i = ref.KEYED[name], i + 2  # skip <name>
            continue
        field = model.model_fields.get(name)
        if field is None:
            return None
        if i == len(parts) - 1:
            return field
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model, i = ann, i + 1
    return None


def _bounds(field) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low is strict, high is strict) from a field's constraints."""
    lo = hi = None
    lo_strict = hi_strict = False
    for m in ref._flat(list(field.metadata)):
        if isinstance(m, Ge):
            lo, lo_strict = m.ge, False
        elif isinstance(m, Gt):
            lo, lo_strict = m.gt, True
        elif isinstance(m, Le):
            hi, hi_strict = m.le, False
        elif isinstance(m, Lt):
            hi, hi_strict = m.lt, True
    return lo, hi, lo_strict, hi_strict


def _control(p: ref.Parameter, field, value: Any) -> dict[str, Any]:
    ann = ref._bare(field.annotation) if field is not None else None
    if typing.get_origin(ann) is typing.Literal:
        return {"control": "choice", "options": [str(a) for a in typing.get_args(ann)]}
    if p.type == "boolean":
        return {"control": "toggle"}
    if p.type in ("number", "integer") and field is not None:
        lo, hi, lo_strict, hi_strict = _bounds(field)
        return {"control": "number", "integer": p.type == "integer", "min": lo, "max": hi,
                "min_strict": lo_strict, "max_strict": hi_strict}
    if p.type == "string":
        return {"control": "text"}
    return {"control": "json"}  # lists and tables: edited as JSON


def _group(key: str) -> str:
    return GROUPS.get(key.split(".")[0], "system")


def levers(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every parameter of resolved scenario data, as the page's levers."""
    params = _parameters()
    out = []
    for key, value in flatten(data):
        section = data.get(key.split(".")[0])
        running = not (isinstance(section, dict) and section.get("enabled") is False)
        generic = ref._generic(key)
        p = params.get(generic)
        if p is None or key in ("name", "description"):
            continue
        lever = {"key": key, "group": _group(key), "value": value, "type": p.type,
                 "unit": p.unit, "allowed": p.allowed, "description": p.description,
                 "default": p.default,
                 "common": key in COMMON and (running or key in SWITCHES),
                 **_control(p, _field(generic), value)}
        if lever["common"] and lever["control"] == "number":
            lo, hi = SLIDER_RANGE.get(key, (lever["min"], lever["max"]))
            if lo is not None and hi is not None:
                lever["slider"] = {"min": lo, "max": hi, "log": key in LOG_SLIDERS}
        out.append(lever)
    order = {k: i for i, k in enumerate(COMMON)}
    out.sort(key=lambda lv: (GROUP_ORDER.index(lv["group"]), not lv["common"],
                             order.get(lv["key"], 0)))
    return out
