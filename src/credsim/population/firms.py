"""Synthetic firms with legal representatives and Unified Social Credit Codes.

A USCC (GB 32100-2015) has 18 characters: registration authority (1),
entity type (1), administrative division (6), organisation code (9, with its
own GB 11714 check character) and a final check character. The alphabet
leaves out I, O, Z, S and V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from credsim.modules import Hook, Module
from credsim.population.people import People, is_adult
from credsim.rng import Stream, Streams, counter_uniform

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
# GB 11714 values a character by digit or by letter (A = 10 ... Z = 35), not by its
# place in the USCC alphabet.
_ORG_VALUE = np.array([int(c) if c.isdigit() else ord(c) - 55 for c in USCC_ALPHABET])


def uscc_check(first17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str | None:
    """Return None if `code` is a well-formed USCC, else what is wrong with it."""
    if len(code) != 18:
        return f"a USCC has 18 characters, this has {len(code)}"
    bad = sorted({c for c in code if c not in _USCC_VALUE})
    if bad:
        return f"characters {''.join(bad)!r} are not in the USCC alphabet {USCC_ALPHABET}"
    expected = uscc_check(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]!r}, expected {expected!r}"
    return None


_ALPHA_ASCII = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)


def make_usccs(rng: np.random.Generator, division: np.ndarray) -> np.ndarray:
    """Vectorised synthetic USCCs ('91' + division + organisation code + check)."""
    n = len(division)
    vals = np.zeros((n, 18), dtype=np.int64)
    vals[:, 0], vals[:, 1] = 9, 1  # market regulation authority, enterprise
    digits = np.asarray(division, dtype=np.int64)[:, None] // 10 ** np.arange(5, -1, -1) % 10
    vals[:, 2:8] = digits
    body = rng.integers(0, 31, size=(n, 8))
    vals[:, 8:16] = body
    org = 11 - (_ORG_VALUE[body] @ np.asarray(_ORG_WEIGHTS)) % 11
    vals[:, 16] = np.where(org == 10, _USCC_VALUE["X"], np.where(org == 11, 0, org))
    vals[:, 17] = (31 - (vals[:, :17] @ np.asarray(_USCC_WEIGHTS)) % 31) % 31
    return _ALPHA_ASCII[vals].view("S18").ravel().astype("U18")


@dataclass
class Firms:
    legal_rep: np.ndarray  # int32 person slot
    region: np.ndarray  # int16
    sector: np.ndarray  # uint8
    compliance: np.ndarray  # float32
    uscc: np.ndarray  # str, 18 characters

    @property
    def n(self) -> int:
        return len(self.legal_rep)


SECTORS = ("manufacturing", "food", "retail", "construction", "services")


def build_firms(n_firms: int, people: People, beta: tuple[float, float], streams: Streams) -> Firms:
    rng = streams.get("population.firms")
    adults = np.flatnonzero(is_adult(people.age))
    if n_firms == 0 or len(adults) == 0:
        return Firms(
            np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.uint8),
            np.zeros(0, np.float32), np.zeros(0, "U18"),
        )
    # Richer people are likelier to represent a firm.
    w = people.income[adults].astype(np.float64)
    w = w / w.sum() if w.sum() > 0 else None
    rep = rng.choice(adults, size=n_firms, p=w).astype(np.int32)
    region = people.region[rep]
    division = 370000 + (region.astype(np.int64) % 100) * 100 + 1  # synthetic division codes
    uscc = make_usccs(rng, division)
    return Firms(
        legal_rep=rep,
        region=region,
        sector=rng.integers(0, len(SECTORS), n_firms).astype(np.uint8),
        compliance=rng.beta(*beta, size=n_firms).astype(np.float32),
        uscc=uscc,
    )


class FirmDynamics(Module):
    """Firms over the years of a run with demography.

    - Succession: a firm whose legal representative dies names a new one the same day,
      a living adult of the firm's region (of anywhere if the region has none), the
      richer likelier, as at the start. A listed or blacklisted firm's listing then
      reaches the new representative (the court list and firm lists, people_changed).
    - Turnover: each day a firm closes with the daily hazard of `firms.exit_rate` (a
      counter uniform per firm slot and day), unless it has an open court case or a
      public record item on display; a new firm is founded in its slot, in the same
      region, with a new representative, compliance, sector and USCC, so that the
      number of firms stays that of the start. Modules hear of it through
      `firms_founded`.
    """

    kind = "firm_dynamics"
    build_order = -5  # before the systems: they read the new representatives
    hooks = (Hook("life", "turn_over", 60),)  # after demography's births and deaths
    random_streams = (
        Stream("firms.succession", "numpy", "day: the successors of the day's dead "
               "representatives"),
        Stream("firms.exit", "counter", "firm slot and day: whether the firm closes"),
        Stream("firms.founding", "numpy", "day: the traits of the day's new firms"),
    )

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled and scenario.population.firms_per_thousand > 0

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.replaced = 0  # representatives replaced so far
        self.closed = 0  # firms closed (and as many founded) so far
        rate = sim.scenario.firms.exit_rate
        # The daily hazard whose 365.25 days make the annual probability.
        self.hazard = 1.0 if rate >= 1 else -math.expm1(math.log1p(-rate) / 365.25)
        self.k_exit = sim.streams.key("firms.exit")

    def people_changed(self, d, change) -> None:
        firms = self.sim.firms
        if not len(change.died) or firms.n == 0:
            return
        orphaned = np.flatnonzero(np.isin(firms.legal_rep, change.died))
        if len(orphaned):
            firms.legal_rep[orphaned] = self._representatives(
                firms.region[orphaned], self.sim.streams.get("firms.succession", d.day))
            self.replaced += len(orphaned)

    def turn_over(self, d) -> None:
        """Today's closures, each followed by a founding in the same slot."""
        firms = self.sim.firms
        if self.hazard <= 0 or firms.n == 0:
            return
        u = counter_uniform(self.k_exit, d.day, np.arange(firms.n))
        closing = np.flatnonzero(u < self.hazard)
        closing = closing[~self._held(closing)]
        if len(closing) == 0:
            return
        rng = self.sim.streams.get("firms.founding", d.day)
        pop = self.sim.scenario.population
        firms.legal_rep[closing] = self._representatives(firms.region[closing], rng)
        firms.compliance[closing] = rng.beta(*pop.firm_compliance, size=len(closing))
        firms.sector[closing] = rng.integers(0, len(SECTORS), len(closing))
        division = 370000 + (firms.region[closing].astype(np.int64) % 100) * 100 + 1
        firms.uscc[closing] = make_usccs(rng, division)
        self.closed += len(closing)
        for m in self.sim.modules.values():
            m.firms_founded(d, closing)

    def _held(self, slots: np.ndarray) -> np.ndarray:
        """Firms that cannot close: an open court case, or an item on display."""
        held = np.zeros(self.sim.firms.n, dtype=bool)
        court = self.sim.get("court_list")
        if court is not None:
            c = court.cases
            held[c["who"][c["is_firm"]]] = True
        lists = self.sim.get("firm_lists")
        if lists is not None:
            held |= lists.items > 0
        return held[slots]

    def _representatives(self, regions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A living adult for each firm of `regions` (of anywhere if the region has none),
        drawn with probability proportional to income."""
        people = self.sim.people
        adults = np.flatnonzero(people.alive & is_adult(people.age))
        out = np.zeros(len(regions), dtype=np.int32)
        if len(adults) == 0:
            return out
        region = people.region[adults]
        for i, r in enumerate(regions.tolist()):
            pool = adults[region == r]
            pool = pool if len(pool) else adults
            w = people.income[pool].astype(np.float64)
            out[i] = rng.choice(pool, p=w / w.sum() if w.sum() > 0 else None)
        return out
