"""Who are whose children: a linked list of children per parent, kept as people are
born, so that finding a parent's children costs their number, not the population's."""

from __future__ import annotations

import numpy as np


class Kin:
    """Each parent's children through `parent1` and through `parent2`: `head[k][p]` is
    the last-born child with parent p in role k, `next[k][c]` the one born before c."""

    def __init__(self, parent1: np.ndarray, parent2: np.ndarray, n: int) -> None:
        self.head = (np.full(n, -1, np.int32), np.full(n, -1, np.int32))
        self.next = (np.full(n, -1, np.int32), np.full(n, -1, np.int32))
        for k, parent in enumerate((parent1, parent2)):
            kids = np.flatnonzero(parent >= 0).astype(np.int32)
            order = np.argsort(parent[kids], kind="stable")
            kids = kids[order]
            par = parent[kids]
            same = np.r_[par[1:] == par[:-1], False]
            self.next[k][kids[:-1][same[:-1]]] = kids[1:][same[:-1]]
            first = np.r_[True, ~same[:-1]] if len(kids) else np.zeros(0, bool)
            self.head[k][par[first]] = kids[first]

    def add(self, born: np.ndarray, parent1: np.ndarray, parent2: np.ndarray) -> None:
        """Children born today (each parent has at most one birth a day)."""
        for k, parent in enumerate((parent1, parent2)):
            has = parent >= 0
            c, p = born[has], parent[has]
            self.next[k][c] = self.head[k][p]
            self.head[k][p] = c

    def children(self, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(child, the parent it was found through) for every child of `parents`."""
        kids, of = [], []
        for k in (0, 1):
            who = np.asarray(parents, dtype=np.int64)
            cur = self.head[k][who]
            while True:
                has = cur >= 0
                if not has.any():
                    break
                who, cur = who[has], cur[has]
                kids.append(cur)
                of.append(who)
                cur = self.next[k][cur]
        if not kids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(kids).astype(np.int64), np.concatenate(of).astype(np.int64)


def living_parents(people, children: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(who, living), each 2 x len(children): the two parents of each child (slot 0 as a
    stand-in where there is none) and whether that parent exists and is alive."""
    parents = np.stack([people.parent1[children], people.parent2[children]])
    living = parents >= 0
    living[living] = people.alive[parents[living]]
    return np.where(living, parents, 0), living


def mean_where(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The mean over axis 0 of `values` where `keep` (NaN where none is kept)."""
    values = np.where(keep, values, 0.0)
    count = keep.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, values.sum(axis=0) / count, np.nan)
