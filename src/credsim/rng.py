"""Common random numbers.

Each named stream is seeded from (base seed, hash of its name, day), so a
scenario that changes one lever changes only the draws of the streams that
lever touches, and results never depend on how the work is split up.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Streams:
    def __init__(self, seed: int):
        self.seed = int(seed)

    def get(self, name: str, day: int = -1) -> np.random.Generator:
        ss = np.random.SeedSequence([self.seed, stream_key(name), day + 1])
        return np.random.Generator(np.random.PCG64(ss))

    def int_seed(self, name: str) -> int:
        """A 31-bit seed for Numba's generator, for streams consumed inside kernels."""
        return int(self.get(name).integers(0, 2**31 - 1))

    def entropy(self) -> dict:
        return {"base_seed": self.seed, "scheme": "SeedSequence([seed, blake2b8(name), day+1])"}
