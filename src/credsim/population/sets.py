"""A set of people with O(1) membership changes and a dense list of its members: for
drawing a member at random (the singles a woman may meet), or for visiting only the
members each day (those out of a gate's starting state)."""

from __future__ import annotations

import numpy as np
from numba import njit


class PeopleSet:
    def __init__(self, n: int) -> None:
        self.list = np.zeros(n, dtype=np.int32)
        self.pos = np.full(n, -1, dtype=np.int32)
        self.size = np.zeros(1, dtype=np.int64)

    def update(self, ids: np.ndarray, inside: np.ndarray) -> None:
        """Put each of `ids` in the set or out of it, as `inside` says."""
        _update(self.list, self.pos, self.size, np.asarray(ids, dtype=np.int64),
                np.asarray(inside, dtype=np.bool_))

    @property
    def members(self) -> np.ndarray:
        return self.list[: int(self.size[0])]

    def __len__(self) -> int:
        return int(self.size[0])


@njit(cache=True)
def _update(lst, pos, size, ids, inside):  # pragma: no cover
    for r in range(len(ids)):
        put(lst, pos, size, ids[r], inside[r])


@njit(cache=True)
def put(lst, pos, size, i, inside):  # pragma: no cover
    """Put person `i` in the set (`lst`: its members, `pos`: each person's place in it or
    -1, `size[0]`: its size) or out of it, as `inside` says; the last member takes the
    place of one who leaves."""
    if inside and pos[i] < 0:
        pos[i] = size[0]
        lst[size[0]] = i
        size[0] += 1
    elif not inside and pos[i] >= 0:
        last = lst[size[0] - 1]
        lst[pos[i]] = last
        pos[last] = pos[i]
        pos[i] = -1
        size[0] -= 1
