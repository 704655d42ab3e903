"""Common random numbers.

Each named stream is seeded from (base seed, hash of its name, day), so a
scenario that changes one lever changes only the draws of the streams that
lever touches, and results never depend on how the work is split up.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from numba import njit


def stream_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


# How each scheme turns (seed, stream name, day, identity) into draws.
SCHEMES = {
    "numpy": "numpy PCG64(SeedSequence([seed, blake2b8(name), day + 1])) per stream and day",
    "counter": "splitmix64 of (blake2b8('<seed>/<name>'), day, identity): a uniform per "
               "identity, computed, not drawn",
    "numba": "Numba MT19937 seeded with splitmix64(blake2b8('<seed>/<name>') + (day + 1) "
             "x golden) >> 32",
    "numba-person": "Numba MT19937 seeded per person and day with splitmix64((s XOR "
                    "person x golden) + (day + 1) x golden) >> 32, s a 31-bit seed drawn "
                    "once from the numpy stream of the name",
}


def name_matches(pattern: str, name: str) -> bool:
    """Whether `name` is one of the names `pattern` declares: each `<x>` in it stands for
    any name made of letters, digits and '_' (a gate's, a behaviour's, ...)."""
    parts = re.split(r"<[a-z_]+>", pattern)
    return re.fullmatch("[A-Za-z0-9_]+".join(map(re.escape, parts)), name) is not None


@dataclass(frozen=True)
class Stream:
    """A random stream a module draws from: its name (`<x>` stands for a name from the
    scenario, such as a gate's), scheme (a key of SCHEMES, or two joined by '+') and
    what one draw is keyed by."""

    name: str
    scheme: str
    identity: str = "day"

    def matches(self, name: str) -> bool:
        return name_matches(self.name, name)


class StreamError(Exception):
    pass


def _example(pattern: str) -> str:
    """A name that a stream pattern matches: each `<x>` stands for 'x'."""
    return re.sub(r"<([a-z_]+)>", r"\1", pattern)


class Streams:
    def __init__(self, seed: int):
        self.seed = int(seed)
        self.registry: dict[str, tuple[str, Stream]] = {}  # name -> (owner, stream)
        self._checked: set[str] = set()  # names drawn so far and found declared

    def register(self, owner: str, stream: Stream) -> None:
        """Declare `stream`, drawn by `owner`; a name declared twice is an error."""
        if any(part not in SCHEMES for part in stream.scheme.split("+")):
            raise StreamError(f"{owner}: stream {stream.name}: unknown scheme "
                              f"{stream.scheme!r} (one of {', '.join(SCHEMES)})")
        for other, (by, s) in self.registry.items():
            # Two declarations overlap when a name could fall under both.
            if other == stream.name or s.matches(_example(stream.name)) or stream.matches(
                    _example(other)):
                raise StreamError(f"{owner}: stream {stream.name} overlaps {other}, "
                                  f"drawn by {by}")
        self.registry[stream.name] = (owner, stream)

    def _check(self, name: str) -> None:
        # Streams are drawn every day: each name is matched against the declarations once.
        if name in self._checked or not self.registry:
            return
        if not any(s.matches(name) for _, s in self.registry.values()):
            raise StreamError(f"random stream {name!r} is drawn but no module declares it")
        self._checked.add(name)

    def get(self, name: str, day: int = -1) -> np.random.Generator:
        self._check(name)
        ss = np.random.SeedSequence([self.seed, stream_key(name), day + 1])
        return np.random.Generator(np.random.PCG64(ss))

    def int_seed(self, name: str) -> int:
        """A 31-bit seed for Numba's generator, for streams consumed inside kernels."""
        return int(self.get(name).integers(0, 2**31 - 1))

    def key(self, name: str) -> int:
        """The key of a counter-based or Numba stream (see counter_uniform, day_seed)."""
        self._check(name)
        return stream_key(f"{self.seed}/{name}")

    def entropy(self) -> dict:
        """Everything needed to reproduce the run's draws: the seed, the schemes, and
        every stream declared, by whom and keyed by what."""
        return {
            "base_seed": self.seed,
            "schemes": dict(SCHEMES),
            "streams": [{"name": name, "module": owner, "scheme": s.scheme,
                         "identity": s.identity}
                        for name, (owner, s) in self.registry.items()],
        }


def occurrence(keys: np.ndarray, bits: int = 12) -> np.ndarray:
    """For each key, how many earlier entries share it (0 for the first), capped at
    2**bits - 1: an ordinal that makes records with the same identity draw apart."""
    keys = np.asarray(keys)
    out = np.zeros(len(keys), dtype=np.uint64)
    if len(keys) < 2:
        return out
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]]
    first = np.maximum.accumulate(np.where(new, np.arange(len(keys)), 0))
    out[order] = np.minimum(np.arange(len(keys)) - first, (1 << bits) - 1)
    return out


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def day_key(key: int, day: int) -> np.uint64:
    """The key of a counter stream on one day (see counter_uniform)."""
    return np.uint64(_mix64((key + (day + 1) * _GOLDEN) & _MASK))


@njit(cache=True, inline="always")
def counter_uniform_one(dkey, i):  # pragma: no cover
    """counter_uniform for one slot i, inside kernels: dkey is day_key(key, day)."""
    z = np.uint64(i) * np.uint64(_GOLDEN) ^ dkey
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def counter_uniform(key: int, day: int, idx: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) for each (stream key, day, slot), computed, not drawn.

    Whether person i seeks a service on day d then never depends on who else
    is evaluated that day: common random numbers at O(people evaluated) cost.
    """
    return _counter_uniforms(day_key(key, day), np.asarray(idx))


@njit(cache=True)
def _counter_uniforms(dkey, idx):  # pragma: no cover
    out = np.empty(len(idx), dtype=np.float64)
    for r in range(len(idx)):
        out[r] = counter_uniform_one(dkey, idx[r])
    return out
