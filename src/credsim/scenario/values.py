"""Overrides given as Python values (the Python API's `set={...}`), and values written
back as the command line's TOML text (so a compare or sweep planned from Python
records the same `--set key=value` strings as one planned from the shell)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from credsim.errors import InputError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Deeper than any scenario (load.MAX_DEPTH is 16): _plain stops converting there and leaves
# the value to validation's iterative depth check, which refuses it with its own message,
# rather than recursing into thousands of levels.
_PLAIN_DEPTH = 32


def set_value(data: dict[str, Any], key: str, value: Any, label: str) -> None:
    """Set the dotted `key` of the scenario data to `value`, creating tables on the way."""
    if not isinstance(key, str):
        raise InputError(f"{label}: keys are dotted strings such as 'run.days', got {key!r}")
    parts = key.split(".")
    if not all(parts):
        raise InputError(f"{label}: {key!r} is not a dotted key such as 'run.days'")
    set_path(data, parts, _plain(value, label), label)


def set_path(data: dict[str, Any], parts: list[str], value: Any, label: str) -> None:
    """data[parts[0]][parts[1]]... = value, creating tables on the way."""
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise InputError(f"{label}: {part!r} is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def _plain(value: Any, label: str, depth: int = 0) -> Any:
    """Tuples as lists, mappings as dicts: the shapes a TOML file gives."""
    if depth > _PLAIN_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, label, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, label, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise InputError(f"{label}: {type(value).__name__} values are not allowed; use numbers, "
                     "strings, booleans, lists or dicts")


def toml_value(value: Any) -> str:
    """`value` as an inline TOML value (what follows `key = ` on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise InputError(f"{type(value).__name__} values cannot be written as TOML")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
