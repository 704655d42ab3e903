"""One day's shared data, passed from hook to hook down the phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Applied(NamedTuple):
    """Deductions (and additions) a module applied today, one per record, for safeguards
    and audits to schedule their reversal with the module's `reverse` hook."""

    owner: Any  # the module that made them and gives them back
    who: np.ndarray
    delta: np.ndarray  # change of the held score (0: none, e.g. a warning)
    delta_true: np.ndarray  # change of the true score
    record: np.ndarray  # ledger record codes
    source: np.ndarray  # observation sources (insider edits are audited)
    rows: np.ndarray  # ledger row number of each held change (-1: no row written)
    # Which an audit will catch (set by threats; then reversed by the audit alone).
    caught: np.ndarray


def by_owner(entries: list[tuple]) -> list[tuple]:
    """Entries (owner module, array, array, ...) grouped by owner, in order of first
    appearance: (owner, each array concatenated over that owner's entries)."""
    out = []
    for owner in dict.fromkeys(e[0] for e in entries):
        mine = [e[1:] for e in entries if e[0] is owner]
        out.append((owner, *(np.concatenate(c) for c in zip(*mine, strict=True))))
    return out


@dataclass(frozen=True)
class PeopleChange:
    """A day's changes of the population, by slot (int32 arrays). Age bands are already
    updated: the born hold CHILD, the dead ABSENT, those who came of age ADULT, the
    retired ELDER. `died_band`: the band each of the dead held (so a module can tell a
    child's death from an adult's); `widowed`: the partners of the dead, single from
    today."""

    born: np.ndarray
    died: np.ndarray
    died_band: np.ndarray
    came_of_age: np.ndarray
    retired: np.ndarray
    # The partners of the day's dead, single from today (empty where nobody partners).
    widowed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def adults_out(self) -> np.ndarray:
        """Adults and elders who died today."""
        # The bands ADULT (1) and ELDER (2) of credsim.population.people (which imports
        # the modules package, so is not imported here).
        return self.died[(self.died_band == 1) | (self.died_band == 2)]


@dataclass
class Day:
    day: int
    since: int  # the ledger's row count when the day began: the day's rows follow it
    events: Any = None  # the day's true events (behave)
    records: Any = None  # the records that take effect today (observe, review)
    n_observed: int = 0  # records of true events (observe)
    n_false: int = 0  # false records from channel errors (observe)
    # People whose held or true standing may have moved today (arrays of ids).
    touched: list[np.ndarray] = field(default_factory=list)
    # Person records the systems acted on today: (ids, behaviours).
    acted: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    # Deductions that took effect today, for safeguards and audits to schedule.
    applied: list[Applied] = field(default_factory=list)
    # People put on or taken off a list today: (listed, lifted). listed: (id, on a false
    # case, the listing's ledger row, its cause: the debtor's own listing or a legal
    # representative's) per listing; lifted: (id, delisting cause, the lifted listing's
    # ledger row) per false case lifted by correction or appeal.
    listings: list[tuple[list, list]] = field(default_factory=list)
    # Standings refreshed today (their held values all moved at once), by name.
    refreshed: set[str] = field(default_factory=set)
    # People whose standing fell below a line where relationships count:
    # (ids, probability that each contact drops the tie).
    fallen: list[tuple[np.ndarray, float]] = field(default_factory=list)
    # The day's births, deaths and band changes (life phase; None on a fixed population).
    change: PeopleChange | None = None

    def acted_on(self) -> tuple[np.ndarray, np.ndarray]:
        """Every person record the systems acted on today: (ids, behaviours)."""
        if not self.acted:
            return np.zeros(0, np.int32), np.zeros(0, np.int16)
        return (np.concatenate([w for w, _ in self.acted]),
                np.concatenate([b for _, b in self.acted]))
