"""The parameter reference: every scenario parameter with its default, range and meaning,
generated from the Pydantic models so that it cannot drift from the code."""

from __future__ import annotations

import difflib
import re
import textwrap
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticUndefined

from credsim.errors import InputError
from credsim.scenario.model import NAME_RULE, Behaviour, Channel, Gate, Scenario, _check_name

# Tables keyed by a name the user chooses, and the model of each entry.
KEYED = {"channels": Channel, "behaviours": Behaviour, "gates": Gate}
# [systems.<name>]: a system from an installed package, its parameters its kind's.
SYSTEMS = "systems"


def parameter_rows() -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed, description) for every parameter."""
    rows: list[tuple[str, str, str, str, str]] = []
    _walk(Scenario, "", rows)
    return rows


@dataclass(frozen=True)
class Parameter:
    key: str  # dotted; `<name>` for the name of a channel, behaviour or gate
    type: str
    default: str
    allowed: str
    unit: str  # from the [brackets] of the description; '' for a pure number or a name
    description: str


# The unit closing a description: "Days simulated [day]." -> "day"; not an interval such
# as "in [0, 1]".
_UNIT = re.compile(r"\s*\[([^\]]*[A-Za-z][^\]]*)\]\s*(?=\.?$)")


def parameters(prefix: str | None = None) -> list[Parameter]:
    """Every parameter, or those whose key starts with `prefix` (a concrete channel,
    behaviour or gate name matches its `<name>` rows); InputError naming close prefixes if
    none does."""
    rows = [_parameter(*r) for r in parameter_rows()]
    if not prefix:
        return rows
    wanted = _generic(prefix)
    found = [r for r in rows if r.key.startswith(wanted)]
    if found:
        return found
    sections = sorted({r.key.split(".")[0] for r in rows})
    prefixes = sorted({".".join(r.key.split(".")[:i]) for r in rows
                       for i in range(1, r.key.count(".") + 2)})
    close = difflib.get_close_matches(wanted, prefixes, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise InputError(f"no parameter starts with {prefix!r}{hint}; sections: "
                     f"{', '.join(sections)}")


def _parameter(key: str, typ: str, default: str, allowed: str, desc: str) -> Parameter:
    m = _UNIT.search(desc)
    unit = m.group(1) if m else ""
    text = (desc[:m.start()] + desc[m.end():]) if m else desc
    return Parameter(key, typ, default, allowed, unit, text.strip())


def _generic(key: str) -> str:
    """`channels.court.false_rate` -> `channels.<name>.false_rate`."""
    parts = key.split(".")
    if len(parts) > 1 and (parts[0] in KEYED or parts[0] == SYSTEMS) and parts[1] != "<name>":
        parts[1] = "<name>"
    return ".".join(parts)


def annotated_toml(scenario: Scenario) -> str:
    """The scenario as TOML (as `scenario_to_toml`), with each key's meaning, unit,
    allowed range and default as a comment above it: a saved file explains itself."""
    from credsim.scenario.load import scenario_to_toml

    rows = {p.key: p for p in parameters()}
    lines = [f"# Scenario {scenario.name!r}, resolved by credsim; every key with its unit "
             "and allowed range.", ""]
    table, kind_rows = "", rows
    for line in scenario_to_toml(scenario).splitlines():
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        key = re.match(r"([A-Za-z0-9_-]+) = ", line)
        row = None
        if header:
            table = header.group(1)
            row = rows.get(_generic(table))
            system = scenario.systems.get(table.partition(".")[2]) if table.startswith(
                f"{SYSTEMS}.") else None
            # Two kinds may share a parameter's name: a system's keys are its kind's.
            kind_rows = rows if system is None else {
                p.key: p for p in (_parameter(*r) for r in system_rows(system["kind"]))}
        elif key:
            dotted = f"{table}.{key.group(1)}" if table else key.group(1)
            row = kind_rows.get(_generic(dotted)) or rows.get(_generic(dotted))
        if row is not None:
            lines.extend(_comment(row))
        lines.append(line)
    return "\n".join(lines) + "\n"


def _comment(p: Parameter) -> list[str]:
    facts = [f"unit: {p.unit}" if p.unit else "", f"allowed: {p.allowed}" if p.allowed else "",
             f"default: {p.default}"]
    text = f"{p.description} ({'; '.join(f for f in facts if f)})"
    return textwrap.wrap(text, width=88, initial_indent="# ", subsequent_indent="# ",
                         break_long_words=False, break_on_hyphens=False)


def _walk(model: type[BaseModel], prefix: str, rows: list) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if name in KEYED and model is Scenario:
            _walk(KEYED[name], f"{key}.<name>.", rows)
            continue
        if name == SYSTEMS and model is Scenario:
            rows += _systems_rows()
            continue
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _walk(ann, f"{key}.", rows)
            continue
        rows.append((key, _type_name(ann), _default(field), _allowed(field, ann),
                     field.description or ""))


def _systems_rows() -> list[tuple[str, str, str, str, str]]:
    """The kind of a [systems.<name>] table, then the parameters of each installed kind."""
    from credsim.modules.registry import plugin_kinds

    kinds = sorted(k for k, c in plugin_kinds().items() if c.Params is not None)
    rows = [(f"{SYSTEMS}.<name>.kind", "string", "required",
             "a kind from an installed package" + (f": {', '.join(kinds)}" if kinds else ""),
             "The kind of a system from an installed package (docs/plugins.md); the table's "
             "other keys are that kind's parameters.")]
    for kind in kinds:
        rows += system_rows(kind)
    return rows


def system_rows(kind: str) -> list[tuple[str, str, str, str, str]]:
    """The parameters of an installed kind, as `systems.<name>.<key>` rows whose
    description starts with the kind."""
    from credsim.modules.registry import kinds

    found: list[tuple[str, str, str, str, str]] = []
    _walk(kinds()[kind].Params, f"{SYSTEMS}.<name>.", found)
    return [(k, t, d, a, f"Kind {kind}: {desc}") for k, t, d, a, desc in found]


def _bare(ann: Any) -> Any:
    """The type inside Annotated[type, ...]."""
    return typing.get_args(ann)[0] if typing.get_origin(ann) is typing.Annotated else ann


def _type_name(ann: Any) -> str:
    ann = _bare(ann)
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return "string"
    if origin in (list, tuple):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type_name(typing.get_args(ann)[1])}"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(
        ann, getattr(ann, "__name__", str(ann))
    )


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return _plain(value)


def _plain(value: Any) -> str:
    """A default as written in a scenario file, with no e notation (2e-05 -> 0.00002)."""
    if isinstance(value, float):
        import numpy as np

        return np.format_float_positional(value, trim="-")
    return str(value)


def _allowed(field, ann: Any) -> str:
    if typing.get_origin(ann) is typing.Literal:
        return ", ".join(str(a) for a in typing.get_args(ann))
    if typing.get_origin(ann) is dict and typing.get_origin(typing.get_args(ann)[1]) is (
        typing.Literal
    ):
        return "values: " + ", ".join(typing.get_args(typing.get_args(ann)[1]))
    parts = [_range(field.metadata)]
    items = _item_type(ann)
    if items is not None:
        each = _range(_metadata(items))
        parts.append(f"each {each}" if each else "")
        if _is_name(items):
            parts.append("each a name")
    if _is_name(ann) or any(_is_name_validator(m) for m in field.metadata):
        parts.append("a name")
    for m in field.metadata:
        if isinstance(m, MaxLen):
            what = "characters" if _bare(ann) is str else "entries"
            parts.append(f"at most {m.max_length} {what}")
    return "; ".join(p for p in parts if p)


def _item_type(ann: Any) -> Any:
    """The type of the items of a list or pair, or of the values of a table."""
    args = [a for a in typing.get_args(_bare(ann)) if a is not Ellipsis]
    origin = typing.get_origin(_bare(ann))
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict:
        return args[1]
    return None


def _metadata(ann: Any) -> list:
    return list(typing.get_args(ann)[1:]) if typing.get_origin(ann) is typing.Annotated else []


def _is_name_validator(m: Any) -> bool:
    return isinstance(m, AfterValidator) and m.func is _check_name


def _is_name(ann: Any) -> bool:
    return any(_is_name_validator(m) for m in _metadata(ann))


def _range(metadata: list) -> str:
    lo = hi = None
    lo_op = hi_op = ""
    for m in _flat(metadata):
        if isinstance(m, Ge):
            lo, lo_op = m.ge, "≤"
        elif isinstance(m, Gt):
            lo, lo_op = m.gt, "<"
        elif isinstance(m, Le):
            hi, hi_op = m.le, "≤"
        elif isinstance(m, Lt):
            hi, hi_op = m.lt, "<"
    if lo is None and hi is None:
        return ""
    left = f"{_num(lo)} {lo_op} " if lo is not None else ""
    right = f" {hi_op} {_num(hi)}" if hi is not None else ""
    return f"{left}x{right}"


def _flat(metadata: list) -> list:
    """Constraints, with those of a nested Field(...) (a FieldInfo) unpacked."""
    out = []
    for m in metadata:
        out.extend(getattr(m, "metadata", [m]) if type(m).__name__ == "FieldInfo" else [m])
    return out


def _num(v: float) -> str:
    """A bound as people read it: 1_000_000, 0.000001 (never 1e+06)."""
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):_}"
    return format(Decimal(repr(v)), "f")


def markdown() -> str:
    lines = [
        "# Scenario parameters",
        "",
        "Every key a scenario file accepts, generated from the code by "
        "`credsim params --markdown`. Units are in brackets in the description; "
        "`<name>` stands for a name you choose (a channel, behaviour, gate or system "
        "from an installed package). "
        f"Every name you choose (also band names and the keys of tables keyed by "
        f"behaviour) uses {NAME_RULE}. "
        "Numbers must be finite; `true`/`false` and quoted strings are not numbers. "
        "Unknown keys are rejected.",
        "",
        "| key | type | default | allowed | description |",
        "|---|---|---|---|---|",
    ]
    for key, typ, default, allowed, desc in parameter_rows():
        cells = (f"`{key}`", typ, default, allowed, desc)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
