"""The social graph as CSR arrays with a tie kind per directed entry.

Generation runs the same seeded Numba pass twice, first counting degrees and
then filling the rows, so no edge list is ever held: peak memory stays near
the CSR itself (4 bytes of neighbour + 1 byte of kind per directed entry,
i.e. 10 bytes per undirected tie). Each pass is split among threads by the
rows they own: every thread replays every person's seeded stream and writes
only its own rows, so the graph is the same whatever the number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from credsim.population.people import People
from credsim.scenario.model import GraphParams

FAMILY, WORK, FRIEND = 1, 2, 3
TIE_KINDS = ("none", "family", "work", "friend")
DROPPED = np.uint8(0x80)  # flag bit on a kind: the tie was dropped


@dataclass
class Graph:
    indptr: np.ndarray  # int64, n + 1
    indices: np.ndarray  # int32 neighbour slots, rows sorted
    kind: np.ndarray  # uint8 tie kind, | DROPPED once dropped

    @property
    def n_ties(self) -> int:
        return len(self.indices) // 2

    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.kind.nbytes

    def with_capacity(self, capacity: int) -> Graph:
        """This graph over `capacity` slots: the new slots (people born later) have no
        ties."""
        extra = capacity + 1 - len(self.indptr)
        if extra <= 0:
            return self
        indptr = np.concatenate([self.indptr, np.full(extra, self.indptr[-1],
                                                      dtype=self.indptr.dtype)])
        return Graph(indptr, self.indices, self.kind)

    def _rows(self, rows: slice | None) -> np.ndarray:
        """The row pointers of the people in `rows` (all by default)."""
        if rows is None:
            return self.indptr
        return self.indptr[rows.start:rows.stop + 1]

    def degree(self, active_only: bool = True, rows: slice | None = None) -> np.ndarray:
        if not active_only:
            return np.diff(self._rows(rows)).astype(np.int32)
        return _count_rows(self._rows(rows), self.kind, False)

    def dropped(self, rows: slice | None = None) -> np.ndarray:
        """Ties each person has lost (dropped by either side)."""
        return _count_rows(self._rows(rows), self.kind, True)

    def contacts(self, rows: slice | None = None) -> np.ndarray:
        """Active ties other than family: a person with none is isolated outside home."""
        return _count_contacts(self._rows(rows), self.kind)

    def assortativity(self, values: np.ndarray, scored: np.ndarray) -> float:
        """Pearson correlation of `values` across the two ends of active ties between
        scored people (NaN if there are fewer than two such ties)."""
        # No float64 copy of values (80 MB at 10 million people): the kernel converts.
        return float(_assortativity(self.indptr, self.indices, self.kind, values, scored))


def build_graph(people: People, p: GraphParams, seed: int) -> Graph:
    n = people.n
    sizes = np.diff(people.household_start)
    family_mean = float(np.sum(sizes * (sizes - 1))) / max(n, 1)
    stub_mean = max(0.0, p.mean_degree - family_mean) / 2.0
    args = (
        people.household_start, people.region, people.region_start, people.group,
        people.sociability, stub_mean, p.homophily_region, p.homophily_group, p.work_share,
        p.locality, p.community_size, seed,
    )
    parts = max(1, min(numba.get_num_threads(), n // 1000 or 1))
    deg = np.zeros(n + 1, dtype=np.int64)
    _emit_parallel(parts, deg, np.zeros(0, np.int32), np.zeros(0, np.uint8), True, *args)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg[:n], out=indptr[1:])
    del deg
    total = int(indptr[-1])
    indices = np.empty(total, dtype=np.int32)
    kind = np.empty(total, dtype=np.uint8)
    cursor = indptr[:-1].copy()
    _emit_parallel(parts, cursor, indices, kind, False, *args)
    del cursor
    _sort_rows(indptr, indices, kind)
    end = _dedupe_rows(indptr, indices, kind)
    return Graph(indptr=indptr, indices=indices[:end], kind=kind[:end])


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _mix(z):  # pragma: no cover - splitmix64 finaliser
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform(state):  # pragma: no cover
    state[0] += _GOLDEN
    return (_mix(state[0]) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _poisson(state, lam):  # pragma: no cover - Knuth's method; lam is small here
    limit = np.exp(-lam)
    k = 0
    prod = _uniform(state)
    while prod > limit:
        k += 1
        prod *= _uniform(state)
    return k


@njit(cache=True, parallel=True)
def _emit_parallel(parts, cursor, indices, kind, counting, hstart, region, region_start,
                   group, sociability, stub_mean, h_region, h_group, work_share, locality,
                   community, seed):  # pragma: no cover
    n = len(region)
    for part in prange(parts):
        _emit(n * part // parts, n * (part + 1) // parts, cursor, indices, kind, counting,
              hstart, region, region_start, group, sociability, stub_mean, h_region, h_group,
              work_share, locality, community, seed)


TIE_BATCH = 4096


@njit(cache=True)
def _emit(own_lo, own_hi, cursor, indices, kind, counting, hstart, region, region_start,
          group, sociability, stub_mean, h_region, h_group, work_share, locality, community,
          seed):  # pragma: no cover
    """Emit every tie; count (or write) only the entries of rows own_lo..own_hi-1.

    Ties are generated into a batch (pure computation), then written in a tight
    loop whose scattered row accesses the CPU can overlap.
    """
    n = len(region)
    ba = np.empty(TIE_BATCH, dtype=np.int64)
    bb = np.empty(TIE_BATCH, dtype=np.int64)
    bt = np.empty(TIE_BATCH, dtype=np.uint8)
    m = 0
    # Family: everyone in a household is tied to everyone else in it.
    for h in range(len(hstart) - 1):
        for a in range(hstart[h], hstart[h + 1]):
            for b in range(a + 1, hstart[h + 1]):
                _put(a, b, FAMILY, counting, own_lo, own_hi, cursor, indices, kind)
    # Other ties: homophily by region (contiguous slots), local community (a window
    # of nearby slots) and group (rejection). Each person has their own splitmix64
    # stream, so a row never depends on the order people are visited in.
    state = np.zeros(1, dtype=np.uint64)
    base = _mix(np.uint64(seed) + _GOLDEN)
    for i in range(n):
        state[0] = _mix(base ^ (np.uint64(i) * _GOLDEN))
        k = _poisson(state, stub_mean * 2.0 * sociability[i])
        r = region[i]
        for _ in range(k):
            if _uniform(state) < h_region:
                lo, hi = region_start[r], region_start[r + 1]
                if _uniform(state) < locality:
                    lo = max(lo, i - community // 2)
                    hi = min(hi, lo + community)
            else:
                lo, hi = 0, n
            j = lo + int(_uniform(state) * (hi - lo))
            if _uniform(state) < h_group:
                for _try in range(8):
                    if group[j] == group[i]:
                        break
                    j = lo + int(_uniform(state) * (hi - lo))
            t = WORK if _uniform(state) < work_share else FRIEND
            if j != i:
                ba[m], bb[m], bt[m] = i, j, t
                m += 1
                if m == TIE_BATCH:
                    for x in range(m):
                        _put(ba[x], bb[x], bt[x], counting, own_lo, own_hi, cursor, indices,
                             kind)
                    m = 0
    for x in range(m):
        _put(ba[x], bb[x], bt[x], counting, own_lo, own_hi, cursor, indices, kind)


@njit(cache=True, inline="always")
def _put(a, b, t, counting, own_lo, own_hi, cursor, indices, kind):  # pragma: no cover
    """Add tie a-b to the owned rows: count it (cursor holds degrees) or write it."""
    for x, y in ((a, b), (b, a)):
        if own_lo <= x < own_hi:
            if not counting:
                indices[cursor[x]] = y
                kind[cursor[x]] = t
            cursor[x] += 1


@njit(cache=True, parallel=True)
def _sort_rows(indptr, indices, kind):  # pragma: no cover
    """Sort each row by neighbour (insertion sort: rows are short)."""
    for i in prange(len(indptr) - 1):
        start, end = indptr[i], indptr[i + 1]
        for a in range(start + 1, end):
            v, t = indices[a], kind[a]
            b = a - 1
            while b >= start and (indices[b] > v or (indices[b] == v and kind[b] > t)):
                indices[b + 1] = indices[b]
                kind[b + 1] = kind[b]
                b -= 1
            indices[b + 1] = v
            kind[b + 1] = t


@njit(cache=True)
def _dedupe_rows(indptr, indices, kind):  # pragma: no cover
    """Drop repeated ties (keeping the lowest kind: family first), compacting in place."""
    w = 0
    n = len(indptr) - 1
    start = indptr[0]
    for i in range(n):
        end = indptr[i + 1]
        row_start = w
        for a in range(start, end):
            if a > start and indices[a] == indices[a - 1]:
                continue
            indices[w] = indices[a]
            kind[w] = kind[a]
            w += 1
        indptr[i] = row_start
        start = end
    indptr[n] = w
    return w


@njit(cache=True)
def _count_rows(indptr, kind, dropped):  # pragma: no cover
    """Per row, the number of entries that are dropped (or, if not `dropped`, active)."""
    n = len(indptr) - 1
    out = np.zeros(n, dtype=np.int32)
    for i in range(n):
        c = 0
        for a in range(indptr[i], indptr[i + 1]):
            if ((kind[a] & 0x80) != 0) == dropped:
                c += 1
        out[i] = c
    return out


@njit(cache=True)
def find_entry(indptr, indices, i, j):  # pragma: no cover
    """Position of j in row i (binary search), or -1."""
    lo, hi = indptr[i], indptr[i + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    if lo < indptr[i + 1] and indices[lo] == j:
        return lo
    return -1


@njit(cache=True)
def _count_contacts(indptr, kind):  # pragma: no cover
    n = len(indptr) - 1
    out = np.zeros(n, dtype=np.int32)
    for i in range(n):
        c = 0
        for a in range(indptr[i], indptr[i + 1]):
            if (kind[a] & 0x80) == 0 and kind[a] != FAMILY:
                c += 1
        out[i] = c
    return out


@njit(cache=True)
def _assortativity(indptr, indices, kind, x, scored):  # pragma: no cover
    # Each undirected tie is seen from both ends, so both ends share one mean and sd.
    s = s2 = sxy = 0.0
    m = 0
    for i in range(len(indptr) - 1):
        if not scored[i]:
            continue
        for a in range(indptr[i], indptr[i + 1]):
            j = indices[a]
            if kind[a] & 0x80 or not scored[j]:
                continue
            xi = np.float64(x[i])
            s += xi
            s2 += xi * xi
            sxy += xi * np.float64(x[j])
            m += 1
    if m < 4:
        return np.nan
    mean = s / m
    var = s2 / m - mean * mean
    if var <= 0:
        return np.nan
    return (sxy / m - mean * mean) / var
