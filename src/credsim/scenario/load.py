"""Loading scenarios from TOML files or presets, with overrides and clear errors."""

from __future__ import annotations

import difflib
import re
import tomllib
from functools import cache
from importlib import resources
from importlib.metadata import entry_points
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from credsim.errors import InputError
from credsim.modules.registry import PRESETS_GROUP
from credsim.scenario.model import Scenario, control_char_at, short_repr
from credsim.scenario.values import set_path

PRESET_PACKAGE = "credsim.scenario.presets"

# Input limits. A scenario is a few kilobytes (the largest preset is about 15 KB); a file
# far larger is a mistake, and parsing and validating one costs memory many times its
# size (a 50 MB file took minutes and gigabytes).
MAX_FILE_BYTES = 1_000_000
# A scenario nests at most four levels (display_days.minor = [lo, hi]); the TOML parser
# and the validation recurse, so thousands of levels would end in a RecursionError.
MAX_DEPTH = 16
# Error messages list at most this many problems; a file of thousands of unknown keys
# should not print thousands of lines.
MAX_ERRORS = 20
UTF8_BOM = "\ufeff"


def preset_names() -> list[str]:
    """credsim's own presets and those of installed packages, by name."""
    return sorted([*_builtin_presets(), *plugin_presets()])


def _builtin_presets() -> list[str]:
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


# A preset's name is typed on the command line and becomes part of a results folder's
# name: credsim's own are lower-case words joined by '-'.
PRESET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


@cache
def plugin_presets() -> dict[str, tuple[Traversable, str]]:
    """Presets that installed packages declare under the entry-point group
    `credsim.presets` (the value names a package whose folder holds `<name>.toml`):
    name -> (file, the package that ships it). A name taken by credsim's own presets
    or by another package is refused, naming both."""
    own = set(_builtin_presets())
    found: dict[str, tuple[Traversable, str]] = {}
    for ep in sorted(entry_points(group=PRESETS_GROUP), key=lambda e: (e.name, e.value)):
        origin = f"entry point {ep.name} = {ep.value} ({PRESETS_GROUP})"
        package = ep.dist.name if ep.dist is not None else ep.value
        try:
            if ep.attr:
                raise ValueError("name a package, not an object in it")
            files = sorted(resources.files(ep.module).iterdir(), key=lambda f: f.name)
        except Exception as exc:  # a broken package is named, not a traceback
            raise InputError(f"{origin}: not a package of presets ({exc})") from None
        for f in files:
            if not f.name.endswith(".toml"):
                continue
            name = f.name[:-5]
            if not PRESET_NAME_RE.fullmatch(name):
                raise InputError(f"{origin}: preset file {short_repr(f.name)}: a preset's "
                                 "name is lower-case letters, digits, '-' and '_', at most "
                                 "48 characters")
            if name in own:
                raise InputError(f"{origin}: preset {name!r} has the name of one of "
                                 f"credsim's own presets; {package} must rename it")
            if name in found:
                raise InputError(f"{origin}: preset {name!r} is also declared by "
                                 f"{found[name][1]}; one of them must rename it")
            found[name] = (f, package)
    return found


def preset_origin(name: str) -> str | None:
    """The package that ships preset `name`, or None for credsim's own."""
    found = plugin_presets().get(name)
    return None if found is None else found[1]


def preset_text(name: str) -> str:
    names = preset_names()
    if not isinstance(name, str) or name not in names:
        raise InputError(
            f"unknown preset {name!r}{_suggest(name, names)}; presets: {', '.join(names)}"
        )
    plugin = plugin_presets().get(name)
    if plugin is not None:
        return _read_preset(plugin[0], f"preset {name} ({plugin[1]})")
    return resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8")


def _read_preset(file: Traversable, label: str) -> str:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(_too_large(label, len(raw)))
    try:
        return raw.decode("utf-8").removeprefix(UTF8_BOM)
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                         f"{exc.start})") from None


def preset_summaries() -> list[tuple[str, str]]:
    return [(n, _parse(preset_text(n), f"preset {n}").get("description", ""))
            for n in preset_names()]


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
    return validate_sized(data, label, seed=seed, days=days, people=people)


def validate_sized(data: dict[str, Any], label: str, *, seed: int | None = None,
                   days: int | None = None, people: int | None = None) -> Scenario:
    """Set the run's seed, days and people where given (they win over the data), then
    validate."""
    run = data.setdefault("run", {})
    if not isinstance(run, dict):
        raise InputError(f"{label}: key 'run' must be a table")
    for key, value in (("seed", seed), ("days", days), ("people", people)):
        if value is not None:
            run[key] = value
    return validate(data, label)


def validate(data: dict[str, Any], label: str) -> Scenario:
    """The Scenario `data` describes, or InputError with one line per problem."""
    if not isinstance(data, dict):
        raise InputError(f"{label}: a scenario must be a table of keys, got {short_repr(data)}")
    _check_depth(data, label)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputError(_format_validation(exc, label, data)) from None


def _check_depth(data: Any, label: str) -> None:
    """Refuse values nested deeper than MAX_DEPTH, iteratively (no recursion to overflow)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{label}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


def scenario_to_toml(scenario: Scenario) -> str:
    return scenario.to_toml()


def _read_source(source: str) -> tuple[str, dict[str, Any]]:
    path = Path(source)
    if path.suffix == ".toml" or path.is_file() or "/" in source or (
        path.exists() and source not in preset_names()
    ):
        label = str(path)
        text = _read_file(path, label)
    else:
        text = preset_text(source)
        label = f"preset {source}"
    return label, _resolve_extends(_parse(text, label), label, seen=())


def _read_file(path: Path, label: str) -> str:
    """The text of a scenario file: a regular file of at most MAX_FILE_BYTES of UTF-8
    (a leading byte-order mark is dropped), or InputError in one line."""
    try:
        if path.is_dir():
            raise InputError(f"{label}: is a folder, not a scenario file")
        if not path.exists():
            raise InputError(f"{label}: no such scenario file")
        if not path.is_file():
            raise InputError(f"{label}: not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(_too_large(label, size))
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # the size may change after stat
    except OSError as exc:
        raise InputError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(_too_large(label, len(raw)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    return text.removeprefix(UTF8_BOM)


def _too_large(label: str, size: int) -> str:
    return (f"{label}: file too large for a scenario ({size:,} bytes; the limit is "
            f"{MAX_FILE_BYTES:,})")


def _parse(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label}: malformed TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise InputError(f"{label}: nested more than {MAX_DEPTH} levels deep") from None


def _resolve_extends(data: dict[str, Any], label: str, seen: tuple[str, ...]) -> dict[str, Any]:
    """`extends = "preset"` starts from that preset and deep-merges this file over it."""
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise InputError(f"{label}: extends: expected a preset name, got {short_repr(base_name)}")
    if base_name in seen:
        raise InputError(f"{label}: extends: cycle through preset {base_name!r}")
    try:
        text = preset_text(base_name)
    except InputError as exc:
        raise InputError(f"{label}: extends: {exc}") from None
    base = _resolve_extends(_parse(text, f"preset {base_name}"), f"preset {base_name}",
                            seen + (base_name,))
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
    """Apply `key.path=value`; the value is parsed as TOML, else taken as a plain string.

    The value is parsed as the TOML line `v = <value>`; a newline in it would end that
    line and let the rest set other keys or vanish, so control characters are refused.
    A value that starts like a TOML array, table or string but does not parse is an
    error rather than a string, so that a typo is reported, not stored."""
    bad = control_char_at(item)
    if bad is not None:
        raise InputError(
            f"--set {short_repr(item)}: control character {item[bad]!r} at position {bad}; "
            "a value must be one line of text"
        )
    if "=" not in item:
        raise InputError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise InputError(f"--set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.strip()[:1] in ("[", "{", '"', "'"):
            raise InputError(f"--set {key}: not a TOML value ({exc})") from None
        value = raw
    except RecursionError:
        raise InputError(f"--set {key}: nested more than {MAX_DEPTH} levels deep") from None
    set_path(data, parts, value, f"--set {key}")


# Pydantic error types meaning "this should have been a table".
_TABLE_TYPES = ("model_type", "model_attributes_type", "dict_type")


def _format_validation(exc: ValidationError, label: str, data: dict[str, Any]) -> str:
    errors = exc.errors()
    lines = [_format_error(err, label, data) for err in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(f"{label}: ... and {len(errors) - MAX_ERRORS} more errors")
    return "\n".join(lines)


def _format_error(err: Any, label: str, data: dict[str, Any]) -> str:
    """One line: label, dotted key, what is wrong (and the offending value, cut short)."""
    names = [str(p) for p in err["loc"] if p != "[key]"]  # "[key]": the key itself is bad
    key = ".".join(_key_part(p) for p in names) or "(top level)"
    if err["type"] in _TABLE_TYPES:
        return f"{label}: {key}: must be a table (got {short_repr(err.get('input'))})"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(names[:-1], data)
        msg = f"unknown key {short_repr(names[-1], 50)}{_suggest(names[-1], allowed)}"
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
        return f"{label}: {key}: {msg}"
    msg = err["msg"]
    if err["type"] == "value_error":
        # Model-level checks start their message with the key they concern.
        msg = msg.removeprefix("Value error, ")
        head, sep, rest = msg.partition(": ")
        if sep and " " not in head:
            key = ".".join([key, head]) if names else head
            msg = rest
    shown = err["type"] != "missing" and "[key]" not in err["loc"]
    if shown and "input" in err and not isinstance(err["input"], dict):
        got = err["input"]
        msg += f" (got {str(got).lower() if isinstance(got, bool) else short_repr(got)})"
    return f"{label}: {key}: {msg}"


def _key_part(part: str) -> str:
    """A part of a dotted key as shown in a message: names and indices as they are,
    anything else (spaces, quotes, control characters, very long) as a short repr."""
    plain = part.replace("_", "a").isalnum() and part.isascii() and len(part) <= 48
    return part if plain else short_repr(part, 50)


def _allowed_keys(loc: list[str], data: dict[str, Any]) -> list[str]:
    """Field names of the model found at `loc` (dict keys are skipped over); in a
    [systems.<name>] table, those of its kind's Params."""
    model: type[BaseModel] | None = Scenario
    i = 0
    if loc[:1] == ["systems"] and len(loc) >= 2:
        model, i = _system_params(data, loc[1]), 2
        if model is not None and len(loc) == 2:
            return sorted(["kind", *model.model_fields])
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


def _system_params(data: dict[str, Any], name: str) -> type[BaseModel] | None:
    """The Params model of the kind that the table systems.<name> names, if any."""
    from credsim.modules.registry import kinds

    entry = data.get("systems", {}).get(name) if isinstance(data.get("systems"), dict) else None
    kind = entry.get("kind") if isinstance(entry, dict) else None
    cls = kinds().get(kind) if isinstance(kind, str) else None
    return None if cls is None else cls.Params


def _suggest(word: str, options: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
