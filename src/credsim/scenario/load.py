"""Loading scenarios from TOML files or presets, with overrides and clear errors."""

from __future__ import annotations

import difflib
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from credsim.errors import InputError
from credsim.scenario.model import Scenario

PRESET_PACKAGE = "credsim.scenario.presets"


def preset_names() -> list[str]:
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def preset_text(name: str) -> str:
    if name not in preset_names():
        raise InputError(
            f"unknown preset {name!r}{_suggest(name, preset_names())}; "
            f"presets: {', '.join(preset_names())}"
        )
    return resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8")


def preset_summaries() -> list[tuple[str, str]]:
    return [(n, tomllib.loads(preset_text(n)).get("description", "")) for n in preset_names()]


def load_scenario(
    source: str,
    overrides: list[str] | None = None,
    *,
    seed: int | None = None,
    days: int | None = None,
    people: int | None = None,
) -> Scenario:
    """Load a scenario from a TOML path or a preset name and apply overrides."""
    label, data = _read_source(source)
    for item in overrides or []:
        _apply_override(data, item)
    run = data.setdefault("run", {})
    if not isinstance(run, dict):
        raise InputError(f"{label}: key 'run' must be a table")
    for key, value in (("seed", seed), ("days", days), ("people", people)):
        if value is not None:
            run[key] = value
    return validate(data, label)


def validate(data: dict[str, Any], label: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputError(_format_validation(exc, label)) from None


def scenario_to_toml(scenario: Scenario) -> str:
    return tomli_w.dumps(scenario.model_dump(mode="json"))


def _read_source(source: str) -> tuple[str, dict[str, Any]]:
    path = Path(source)
    if path.suffix == ".toml" or path.is_file() or "/" in source or (
        path.exists() and source not in preset_names()
    ):
        if not path.is_file():
            raise InputError(f"{source}: no such scenario file")
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc.strerror})") from None
        label = str(path)
    else:
        text = preset_text(source)
        label = f"preset {source}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label}: malformed TOML: {exc}") from None
    return label, _resolve_extends(data, label, seen=())


def _resolve_extends(data: dict[str, Any], label: str, seen: tuple[str, ...]) -> dict[str, Any]:
    """`extends = "preset"` starts from that preset and deep-merges this file over it."""
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise InputError(f"{label}: extends: expected a preset name, got {base_name!r}")
    if base_name in seen:
        raise InputError(f"{label}: extends: cycle through preset {base_name!r}")
    base = _resolve_extends(
        tomllib.loads(preset_text(base_name)), f"preset {base_name}", seen + (base_name,)
    )
    return _merge(base, data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; an empty table in `over` replaces (so a preset can drop all gates)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and v and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _apply_override(data: dict[str, Any], item: str) -> None:
    """Apply `key.path=value`; the value is parsed as TOML, else taken as a string."""
    if "=" not in item:
        raise InputError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise InputError(f"--set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise InputError(f"--set {key}: {part!r} is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def _format_validation(exc: ValidationError, label: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            msg = f"unknown key {loc[-1]!r}{_suggest(loc[-1], allowed)}"
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        else:
            msg = err["msg"]
            if err["type"] == "value_error":
                # Model-level checks start their message with the key they concern.
                msg = msg.removeprefix("Value error, ")
                head, sep, rest = msg.partition(": ")
                if sep and " " not in head:
                    key = ".".join(loc + [head]) if loc else head
                    msg = rest
            if "input" in err and err["type"] not in ("missing",) and not isinstance(
                err["input"], dict
            ):
                msg += f" (got {err['input']!r})"
        lines.append(f"{label}: {key}: {msg}")
    return "\n".join(lines)


def _allowed_keys(loc: list[str]) -> list[str]:
    """Field names of the model found at `loc` (dict keys are skipped over)."""
    model: type[BaseModel] | None = Scenario
    i = 0
    while model is not None and i < len(loc):
        field = model.model_fields.get(loc[i])
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        if args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            model, i = args[-1], i + 2  # dict[str, Model]: skip the user's key
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model, i = ann, i + 1
        else:
            return []
    return sorted(model.model_fields) if model is not None else []


def _suggest(word: str, options: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
