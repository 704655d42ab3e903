"""The synthetic society: households and parents, groups and regions, the social graph,
firms' Unified Social Credit Codes.

Statistical checks use fixed seeds and tolerances of 4 standard errors derived from
the sampling design (households are the sampling unit for groups).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credsim.population.firms import USCC_ALPHABET, build_firms, make_usccs, validate_uscc
from credsim.population.graph import FAMILY, build_graph, find_entry
from credsim.population.people import CHILD, MAX_HOUSEHOLD, build_people
from credsim.rng import Streams
from credsim.scenario.model import GraphParams, PopulationParams

N = 20_000
SHARES = [0.7, 0.2, 0.1]
POP = PopulationParams(group_shares=SHARES, group_income_factor=[1.0, 0.9, 0.8])


@pytest.fixture(scope="module")
def people():
    return build_people(POP, N, Streams(5))


@pytest.fixture(scope="module")
def graph(people):
    return build_graph(people, GraphParams(), Streams(5).int_seed("graph"))


def _rows(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


# --- households, parents, groups, regions ---------------------------------------------


def test_households_are_contiguous_runs_of_slots(people):
    p = people
    hs = p.household_start
    assert hs[0] == 0 and hs[-1] == N
    sizes = np.diff(hs)
    assert sizes.min() >= 1 and sizes.max() <= MAX_HOUSEHOLD
    assert np.array_equal(p.household, np.repeat(np.arange(len(sizes)), sizes))


def test_mean_household_size(people):
    sizes = np.diff(people.household_start)
    # sizes are 1 + Poisson(mean - 1) capped at 8; the cap moves the mean by < 0.001.
    se = np.sqrt((POP.household_size_mean - 1) / len(sizes))
    assert abs(sizes.mean() - POP.household_size_mean) < 4 * se + 1e-3


def test_children_have_adult_parents_in_their_own_household(people):
    p = people
    child = p.age == CHILD
    assert child.any()
    assert np.all(p.parent1[child] >= 0)
    for parent in (p.parent1, p.parent2):
        has = child & (parent >= 0)
        assert np.all(p.household[parent[has]] == p.household[has])
        assert np.all(p.age[parent[has]] != CHILD)
        assert np.all(parent[has] != np.flatnonzero(has))
    both = child & (p.parent2 >= 0)
    assert np.all(p.parent1[both] != p.parent2[both])
    assert np.all(p.parent1[~child] == -1) and np.all(p.parent2[~child] == -1)
    assert np.all(p.income[child] == 0)


@pytest.mark.parametrize("seed", [5, 6])
def test_group_shares_match_configuration(seed):
    p = build_people(POP, N, Streams(seed))
    sizes = np.diff(p.household_start).astype(np.float64)
    assert np.all(p.group[p.household_start[:-1]] == p.group[p.household_start[1:] - 1])
    for g, share in enumerate(SHARES):
        observed = np.mean(p.group == g)
        # Households are drawn independently: Var = share (1 - share) sum(size^2) / N^2.
        se = np.sqrt(share * (1 - share) * np.sum(sizes**2)) / N
        assert abs(observed - share) < 4 * se, (g, observed, share, se)


@pytest.mark.parametrize("urban_share", [0.0, 0.3, 0.6, 0.9, 1.0])
def test_urban_share_of_people(urban_share):
    p = build_people(PopulationParams(urban_share=urban_share), N, Streams(3))
    urban = p.urban[p.region]
    region_pop = np.bincount(p.region, minlength=len(p.urban)) / N
    # The most populous regions are made urban until they hold urban_share of people:
    # the urban share overshoots by less than the last (largest remaining) region added.
    if urban_share == 0:
        assert not urban.any()
    else:
        assert urban_share - 1e-12 <= urban.mean() < urban_share + region_pop.max()
        assert region_pop[p.urban].min() >= region_pop[~p.urban].max(initial=0)


def test_regions_are_contiguous_and_never_split_a_household(people):
    p = people
    assert np.all(np.diff(p.region) >= 0)
    assert np.array_equal(p.region_start, np.searchsorted(p.region, np.arange(len(p.urban) + 1)))
    assert np.all(p.region[p.household_start[:-1]] == p.region[p.household_start[1:] - 1])


def test_rural_income_factor(people):
    p = people
    adult = (p.age == 1) & (p.group == 0)
    li = np.log(p.income[adult].astype(np.float64))
    urban = p.urban[p.region][adult]
    diff = li[~urban].mean() - li[urban].mean()
    se = POP.income_log_sd * np.sqrt(1 / urban.sum() + 1 / (~urban).sum())
    assert abs(diff - np.log(POP.rural_income_factor)) < 4 * se


def test_population_is_reproducible(people):
    again = build_people(POP, N, Streams(5))
    for name in ("household", "region", "group", "age", "income", "compliance", "voice"):
        assert np.array_equal(getattr(again, name), getattr(people, name)), name
    other = build_people(POP, N, Streams(6))
    assert not np.array_equal(other.income, people.income)


# --- the social graph ------------------------------------------------------------------


def test_csr_shape(graph):
    g = graph
    assert len(g.indptr) == N + 1 and g.indptr[0] == 0
    assert np.all(np.diff(g.indptr) >= 0)
    assert g.indptr[-1] == len(g.indices) == len(g.kind)
    assert g.indices.min() >= 0 and g.indices.max() < N


def test_rows_sorted_without_duplicates_or_self_loops(graph):
    g = graph
    rows = _rows(g.indptr)
    same_row = rows[1:] == rows[:-1]
    assert np.all(np.diff(g.indices.astype(np.int64))[same_row] > 0)
    assert not np.any(g.indices == rows)


def test_graph_is_symmetric_with_symmetric_kinds(graph):
    g = graph
    rows = _rows(g.indptr).astype(np.int64)
    cols = g.indices.astype(np.int64)
    fwd = np.argsort(rows * N + cols)
    back = np.argsort(cols * N + rows)
    assert np.array_equal((rows * N + cols)[fwd], (cols * N + rows)[back])
    assert np.array_equal(g.kind[fwd], g.kind[back])
    assert len(g.indices) % 2 == 0


@pytest.mark.parametrize("mean_degree", [8.0, 15.0, 30.0])
def test_mean_degree_near_target(people, mean_degree):
    g = build_graph(people, GraphParams(mean_degree=mean_degree), 99)
    assert abs(np.diff(g.indptr).mean() - mean_degree) < 0.05 * mean_degree


@pytest.mark.parametrize("homophily", [0.3, 0.85])
def test_region_homophily(people, homophily):
    p = people
    g = build_graph(people, GraphParams(homophily_region=homophily), 11)
    rows = _rows(g.indptr)
    one_way = (rows < g.indices) & (g.kind != FAMILY)  # each undirected non-family tie once
    inside = (p.region[rows] == p.region[g.indices])[one_way]
    n = len(inside)
    se = np.sqrt(0.25 / n)
    region_pop = np.bincount(p.region) / N
    # A share h of ties is drawn inside one's region; the rest land anywhere, so inside it
    # too with probability (own region's population share) <= the largest region's share.
    assert inside.mean() > homophily - 4 * se
    assert inside.mean() < homophily + (1 - homophily) * region_pop.max() + 4 * se


def test_group_homophily_raises_same_group_ties(people):
    p = people
    rows_share = []
    for h in (0.0, 0.9):
        g = build_graph(people, GraphParams(homophily_group=h), 13)
        rows = _rows(g.indptr)
        sel = (rows < g.indices) & (g.kind != FAMILY)
        rows_share.append(np.mean((p.group[rows] == p.group[g.indices])[sel]))
    se = np.sqrt(0.25 / 50_000)
    assert rows_share[1] > rows_share[0] + 4 * se


def test_family_ties_join_exactly_the_household(people, graph):
    p, g = people, graph
    rows = _rows(g.indptr)
    fam = g.kind == FAMILY
    assert np.all(p.household[rows[fam]] == p.household[g.indices[fam]])
    sizes = np.diff(p.household_start)
    assert fam.sum() == np.sum(sizes * (sizes - 1))  # every ordered pair of members
    # ... and every household pair is a family tie, whatever else also joined them.
    for h in range(0, len(sizes), 97):
        members = range(p.household_start[h], p.household_start[h + 1])
        for a in members:
            for b in members:
                if a != b:
                    pos = find_entry(g.indptr, g.indices, a, b)
                    assert pos >= 0 and g.kind[pos] == FAMILY


def test_graph_is_reproducible_and_seed_dependent(people, graph):
    again = build_graph(people, GraphParams(), Streams(5).int_seed("graph"))
    assert np.array_equal(again.indptr, graph.indptr)
    assert np.array_equal(again.indices, graph.indices)
    assert np.array_equal(again.kind, graph.kind)
    other = build_graph(people, GraphParams(), 12345)
    assert not np.array_equal(other.indices[: 10_000], graph.indices[: 10_000])


def test_graph_does_not_depend_on_the_number_of_threads(people):
    before = numba.get_num_threads()
    try:
        graphs = []
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            graphs.append(build_graph(people, GraphParams(), 21))
    finally:
        numba.set_num_threads(before)
    for g in graphs[1:]:
        assert np.array_equal(g.indptr, graphs[0].indptr)
        assert np.array_equal(g.indices, graphs[0].indices)
        assert np.array_equal(g.kind, graphs[0].kind)


@settings(max_examples=300, deadline=None)
@given(i=st.integers(0, N - 1), j=st.integers(0, N - 1))
def test_find_entry_agrees_with_a_scan_of_the_row(graph, i, j):
    g = graph
    row = g.indices[g.indptr[i]: g.indptr[i + 1]]
    hits = np.flatnonzero(row == j)
    expected = int(g.indptr[i] + hits[0]) if len(hits) else -1
    assert find_entry(g.indptr, g.indices, i, j) == expected


def test_find_entry_finds_every_neighbour(graph):
    g = graph
    for i in range(0, N, 37):
        for pos in range(g.indptr[i], g.indptr[i + 1]):
            assert find_entry(g.indptr, g.indices, i, g.indices[pos]) == pos


# --- Unified Social Credit Codes -------------------------------------------------------

EXAMPLE = "91350100M000100Y43"  # the published GB 32100-2015 example
FORBIDDEN = set("IOZSV")
GB11714_VALUE = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def _check_char(first17: str) -> str:
    """GB 32100-2015: weights 3^i mod 31, check = (31 - sum mod 31) mod 31, written
    independently of credsim's implementation."""
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def _gb11714_ok(org: str) -> bool:
    """GB 11714-1997: 8 characters (0-9 = 0..9, A-Z = 10..35), weights 3 7 9 10 5 8 4 2,
    check = 11 - sum mod 11, with 10 -> X and 11 -> 0."""
    total = sum(GB11714_VALUE[c] * w for c, w in zip(org[:8], (3, 7, 9, 10, 5, 8, 4, 2),
                                                      strict=True))
    c = 11 - total % 11
    return org[8] == ("X" if c == 10 else "0" if c == 11 else str(c))


def test_alphabet_leaves_out_i_o_z_s_v():
    assert len(USCC_ALPHABET) == 31 == len(set(USCC_ALPHABET))
    assert not FORBIDDEN & set(USCC_ALPHABET)
    assert set(USCC_ALPHABET) == set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") - FORBIDDEN


def test_published_example_validates():
    assert validate_uscc(EXAMPLE) is None
    assert _check_char(EXAMPLE[:17]) == EXAMPLE[17]
    assert _gb11714_ok(EXAMPLE[8:17])


@pytest.fixture(scope="module")
def firms(people):
    return build_firms(2000, people, (6.0, 2.0), Streams(5))


def test_generated_codes_are_valid(firms):
    codes = firms.uscc.tolist()
    assert len(codes) == 2000
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert len(code) == 18
        assert not FORBIDDEN & set(code), code
        assert validate_uscc(code) is None, code
        assert code[17] == _check_char(code[:17])
        assert code[:2] == "91"


def test_legal_representatives_are_adults(people, firms):
    assert np.all(people.age[firms.legal_rep] != CHILD)
    assert np.array_equal(firms.region, people.region[firms.legal_rep])


def test_embedded_organisation_code_has_a_gb11714_check_character(firms):
    """Regression: letters were valued by their USCC-alphabet index (J=18 ...) instead of
    GB 11714's A=10 ... Z=35, so most organisation-code check characters were wrong."""
    bad = [c for c in firms.uscc.tolist() if not _gb11714_ok(c[8:17])]
    assert bad == []


def test_make_usccs_is_seeded():
    div = np.full(50, 370101)
    a = make_usccs(np.random.default_rng(1), div)
    b = make_usccs(np.random.default_rng(1), div)
    assert a.tolist() == b.tolist()
    assert all(c[2:8] == "370101" for c in a.tolist())


@pytest.mark.parametrize("code", ["", EXAMPLE[:17], EXAMPLE + "0", EXAMPLE * 2])
def test_validate_rejects_wrong_length(code):
    msg = validate_uscc(code)
    assert msg is not None and "18 characters" in msg and str(len(code)) in msg


@pytest.mark.parametrize("bad", ["I", "O", "Z", "S", "V", "a", "-", " ", "é"])
def test_validate_rejects_characters_outside_the_alphabet(bad):
    code = EXAMPLE[:5] + bad + EXAMPLE[6:]
    msg = validate_uscc(code)
    assert msg is not None and bad in msg and "alphabet" in msg


def test_validate_rejects_a_wrong_check_character():
    wrong = "4" if EXAMPLE[17] != "4" else "5"
    msg = validate_uscc(EXAMPLE[:17] + wrong)
    assert msg is not None and "check character" in msg
    assert repr(wrong) in msg and repr(EXAMPLE[17]) in msg


_body = st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17)


@settings(max_examples=300, deadline=None)
@given(body=_body, pos=st.integers(0, 17), new=st.sampled_from(USCC_ALPHABET))
def test_any_single_character_change_is_rejected(body, pos, new):
    code = body + _check_char(body)
    assert validate_uscc(code) is None
    changed = code[:pos] + new + code[pos + 1:]
    if changed == code:
        return
    # The weights 3^i are non-zero mod the prime 31, so every substitution moves the sum.
    msg = validate_uscc(changed)
    assert msg is not None and "check character" in msg


@settings(max_examples=300, deadline=None)
@given(body=_body, pos=st.integers(0, 15))
def test_adjacent_transpositions_are_rejected(body, pos):
    code = body + _check_char(body)
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2:]
    if swapped == code:
        return
    assert validate_uscc(swapped) is not None
