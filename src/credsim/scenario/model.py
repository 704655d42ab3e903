"""Pydantic models of a scenario.

Every parameter carries its default, unit and allowed range in its Field, so
that validation, `credsim show` and docs/parameters.md all come from one place.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

DOMAINS = (
    "finance", "court", "traffic", "transport", "civic", "consumption",
    "online", "firm", "travel", "housing", "education", "employment", "social",
)
Domain = Literal[
    "finance", "court", "traffic", "transport", "civic", "consumption",
    "online", "firm", "travel", "housing", "education", "employment", "social",
]
# The grades of a points system unless it names its own (`points.grades`), from the
# highest standing down.
GRADES = ("AAA", "AA", "A", "B", "C", "D")
# How a person's traits modulate a behaviour's base rate (multiplier in [0, 2]).
Driver = Literal["noncompliance", "voice", "generosity", "none"]


# --- input limits -----------------------------------------------------------------------
# A name the user chooses (a channel, behaviour, gate, band ...) becomes a timeseries column
# (`gate_<name>`, `band_<name>`), a value in the results tables and a word in messages and
# SQL queries. Letters, digits and `_`, starting with a letter, keep every such use plain:
# no quoting, no markup, no path or query tricks. 48 characters leave room for the
# column prefixes and suffixes and stay readable in a table header.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
NAME_RULE = "letters, digits and '_', starting with a letter, at most 48 characters"
# Free text (scenario name and description, a gate's provider) is printed in terminals
# and stored in manifests: no control characters (a newline or an escape sequence would
# forge output lines), no unpaired surrogates (they cannot be written as UTF-8).
NAME_MAX, DESCRIPTION_MAX = 100, 500
# Tables keyed by user names: each entry costs work every simulated day and columns in
# the outputs; far above what any modelled system has (Rongcheng has 35 behaviours).
ENTRIES_MAX = 256


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"not a valid name {short_repr(value)}: use {NAME_RULE}")
    return value


def _check_text(value: str) -> str:
    i = control_char_at(value)
    if i is not None:
        raise ValueError(f"control character {value[i]!r} at position {i}; use plain text")
    return value


# Control characters (Cc: newline, escape, NUL ...), line and paragraph separators (Zl, Zp:
# they break lines too), unpaired surrogates (Cs: not writable as UTF-8).
_CONTROL_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))
# Bidirectional overrides reorder how text is shown ("Trojan Source"); never needed here.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_char_at(text: str) -> int | None:
    """Position of the first character that could forge or break a line of output."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in _CONTROL_CATEGORIES or ch in _BIDI_CONTROLS:
            return i
    return None


def short_repr(value: Any, limit: int = 60) -> str:
    """repr of a value, cut short so that a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list_as_tuple(value: Any) -> Any:
    # TOML and JSON have arrays, not tuples: accept a list where a pair is expected.
    return tuple(value) if isinstance(value, list) else value


Name = Annotated[str, AfterValidator(_check_name)]
# A grade name becomes a timeseries column (`grade_<name>`) and a value in gate conditions
# (`grade<=C`): letters and digits, short enough for a table header.
GRADE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,11}")
GRADE_RULE = "letters and digits, starting with a letter, at most 12 characters"


def _check_grade(value: str) -> str:
    if not GRADE_RE.fullmatch(value):
        raise ValueError(f"not a valid grade name {short_repr(value)}: use {GRADE_RULE}")
    return value


Grade = Annotated[str, AfterValidator(_check_grade)]
ShortText = Annotated[str, Field(max_length=NAME_MAX), AfterValidator(_check_text)]
LongText = Annotated[str, Field(max_length=DESCRIPTION_MAX), AfterValidator(_check_text)]
# Beta(a, b) trait distributions, drawn as X / (X + Y) from float32 Gamma(a) and Gamma(b)
# draws. Below a = 0.2 those draws underflow to 0 often enough (a = 0.1: 3e-5 of them,
# a = 0.01: a third) that both are 0 for some people and the trait is 0 / 0 = NaN; at
# 0.2 and above the rate is that of a = 1. Above 1000 the trait is a constant.
BetaParam = Annotated[float, Field(ge=0.2, le=1000)]
BetaPair = Annotated[tuple[BetaParam, BetaParam], BeforeValidator(_list_as_tuple)]
# [low, high] ranges of days or years; each key narrows the range further in its check.
DayCount = Annotated[int, Field(ge=1, le=36_500)]
IntPair = Annotated[tuple[DayCount, DayCount], BeforeValidator(_list_as_tuple)]
# Per-group multipliers of detection and false records: >= 0; 100x is far beyond any
# reported disparity, and keeps rates x multipliers finite and small.
GroupFactor = Annotated[float, Field(ge=0, le=100)]


class Strict(BaseModel):
    # strict: a boolean is not a number and a string is not a number (no silent
    # `true` -> 1 or "30" -> 30); an int is still accepted where a float is expected.
    # allow_inf_nan=False: NaN and infinities are refused everywhere, including inside
    # lists, pairs and tables, since one NaN turns a whole run into NaNs.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


class RunParams(Strict):
    days: int = Field(365, ge=1, le=18_263, description="Days simulated (up to 50 years) [day].")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Base seed of every random stream.")
    people: int = Field(
        100_000, ge=100, le=200_000_000, description="Number of synthetic citizens [persons]."
    )


class PopulationParams(Strict):
    regions: int = Field(20, ge=1, le=10_000, description="Number of regions.")
    urban_share: float = Field(
        0.6, ge=0, le=1, description="Share of regions (by population) that are urban."
    )
    # Shares are each in [0, 1]: before, [1.5, -0.5] summed to 1 and passed.
    group_shares: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        [0.85, 0.15],
        min_length=1,
        max_length=16,
        description="Population share of each abstract audit group (sums to 1).",
    )
    household_size_mean: float = Field(
        2.8, ge=1, le=8, description="Mean household size [persons]."
    )
    elder_share: float = Field(
        0.15, ge=0, le=1, description="Probability an adult-slot member is aged 65+."
    )
    income_log_mean: float = Field(
        10.6, ge=0, le=20, description="Log-mean of urban annual income [log currency units]."
    )
    income_log_sd: float = Field(0.6, ge=0, le=3, description="Log-sd of annual income.")
    rural_income_factor: float = Field(
        0.45, gt=0, le=2, description="Rural income relative to urban."
    )
    # > 0: incomes are log-normal and ranked; up to 10x the majority's, far beyond any
    # measured gap between groups.
    group_income_factor: list[Annotated[float, Field(gt=0, le=10)]] = Field(
        [1.0, 0.8], min_length=1, max_length=16,
        description="Income multiplier for each group (one per group).",
    )
    elder_income_factor: float = Field(
        0.5, ge=0, le=2, description="Income of people 65+ (pensions) relative to adults."
    )
    savings_months: float = Field(
        4.0, ge=0, le=120, description="Median savings [months of income]."
    )
    savings_log_sd: float = Field(1.0, ge=0, le=3, description="Log-sd of savings.")
    private_school_share: float = Field(
        0.08, ge=0, le=1,
        description="Share of children of median-income parents in high-fee private schools "
        "(rises with income).",
    )
    firms_per_thousand: float = Field(
        20.0, ge=0, le=1000, description="Firms per 1000 citizens [firms]."
    )
    compliance: BetaPair = Field(
        (6.0, 2.0), description="Beta(a, b) of the compliance trait in [0, 1]."
    )
    voice: BetaPair = Field(
        (1.5, 6.0), description="Beta(a, b) of voice: propensity to publicly criticise."
    )
    sociability: BetaPair = Field(
        (4.0, 4.0), description="Beta(a, b) of sociability (scales tie count)."
    )
    generosity: BetaPair = Field(
        (2.0, 5.0), description="Beta(a, b) of generosity (drives good acts)."
    )
    firm_compliance: BetaPair = Field(
        (6.0, 2.0), description="Beta(a, b) of firms' compliance trait."
    )

    @model_validator(mode="after")
    def _check(self) -> PopulationParams:
        if abs(sum(self.group_shares) - 1.0) > 1e-6:
            raise ValueError(
                f"group_shares: must sum to 1, got {sum(self.group_shares):g}"
            )
        if len(self.group_income_factor) != len(self.group_shares):
            raise ValueError("group_income_factor: needs one value per group in group_shares")
        return self


class GraphParams(Strict):
    mean_degree: float = Field(
        15.0, ge=0, le=500, description="Target mean number of ties per person [ties]."
    )
    homophily_region: float = Field(
        0.85, ge=0, le=1, description="Share of non-family ties inside one's own region."
    )
    homophily_group: float = Field(
        0.6, ge=0, le=1,
        description="Probability a non-family tie is redrawn (up to 8 times) until it "
        "reaches one's own group.",
    )
    work_share: float = Field(
        0.4, ge=0, le=1, description="Share of non-family ties that are work ties."
    )
    locality: float = Field(
        0.7, ge=0, le=1,
        description="Share of within-region ties drawn from one's local community "
        "(gives clustering; keeps generation cache-friendly).",
    )
    community_size: int = Field(
        2000, ge=2, le=10_000_000, description="Size of a local community [persons]."
    )


class Behaviour(Strict):
    domain: Domain = Field(description="Domain the behaviour belongs to.")
    channel: Name = Field(description="Observation channel that can record it.")
    rate: float = Field(
        ge=0, le=0.5, description="Base daily rate per person (or firm) [events/day]."
    )
    driver: Driver = Field("none", description="Trait that modulates the rate.")
    stress_elasticity: float = Field(
        0.0, ge=0, le=10, description="Rate multiplier at full economic stress is 1 + this."
    )
    actor: Literal["person", "firm"] = Field("person", description="Who emits it.")
    debt_months: float = Field(
        0.0, ge=0, le=600,
        description="Court cases only: debt of the judgment [months of income].",
    )


class Channel(Strict):
    detection: float = Field(ge=0, le=1, description="Probability a true event is recorded.")
    detection_by_group: list[GroupFactor] = Field(
        [1.0], min_length=1, max_length=16,
        description="Detection multiplier per group (one value applies to all).",
    )
    false_rate: float = Field(
        0.0, ge=0, le=0.01,
        description="False records (misattributions) per adult per day [records/day].",
    )
    false_rate_by_group: list[GroupFactor] = Field(
        [1.0], min_length=1, max_length=16,
        description="False-record multiplier per group (one value applies to all).",
    )


class PointsSystem(Strict):
    enabled: bool = Field(False, description="Run a points system.")
    initial: int = Field(1000, ge=0, le=100_000, description="Starting score [points].")
    deltas: dict[Name, Annotated[int, Field(ge=-100_000, le=100_000)]] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Score change per recorded behaviour [points], keyed by behaviour.",
    )
    listing_delta: int = Field(
        0, ge=-10_000, le=0, description="Score change when put on the court list [points]."
    )
    grades: list[Grade] = Field(
        default_factory=lambda: list(GRADES), min_length=2, max_length=12,
        description="Names of the grades, from the highest standing down (the last has "
        "no floor); letters and digits, at most 12 characters each.",
    )
    grade_floors: dict[Grade, Annotated[int, Field(ge=-1_000_000, le=1_000_000)]] = Field(
        default_factory=lambda: {"AAA": 1050, "AA": 1030, "A": 960, "B": 850, "C": 600},
        description="Lowest score of each grade but the last [points].",
    )
    instant_grade: dict[Name, Grade] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Behaviours that cap the grade at once (e.g. drunk driving -> C).",
    )
    instant_grade_days: int = Field(
        365, ge=1, le=3650, description="How long an instant grade cap lasts [days]."
    )
    transparency: float = Field(
        1.0, ge=0, le=1, description="1 = rules published, 0 = black box."
    )
    warn_max: int = Field(
        0, ge=0, le=100_000,
        description="Warn before punishing: a deduction of at most this many points is only "
        "a warning if the person has had no warning within warning_days (0 = off) [points].",
    )
    warning_days: int = Field(
        365, ge=1, le=3650, description="How long a warning counts [days]."
    )

    @model_validator(mode="after")
    def _check(self) -> PointsSystem:
        grades = self.grades
        seen: dict[str, str] = {}
        for g in grades:  # columns grade_<g> must differ, and DuckDB ignores case
            if g.lower() in seen:
                raise ValueError(f"grades: {g!r} repeats {seen[g.lower()]!r} (grade names "
                                 "must differ, ignoring case)")
            seen[g.lower()] = g
        above = grades[:-1]
        wrong = [g for g in self.grade_floors if g not in above]
        if wrong:
            raise ValueError(f"grade_floors.{wrong[0]}: not a grade with a floor; give one "
                             f"floor for each of {', '.join(above)} ({grades[-1]} has none)")
        missing = [g for g in above if g not in self.grade_floors]
        if missing:
            raise ValueError(f"grade_floors: needs {', '.join(above)}; missing "
                             f"{', '.join(missing)}")
        floors = [self.grade_floors[g] for g in above]
        if any(a <= b for a, b in zip(floors, floors[1:], strict=False)):
            raise ValueError(f"grade_floors: must fall strictly from {above[0]} to "
                             f"{above[-1]}")
        for b, g in self.instant_grade.items():
            if g not in grades:
                raise ValueError(f"instant_grade.{b}: unknown grade {g!r}; the grades: "
                                 f"{', '.join(grades)}")
        return self

    def grade_index(self, grade: str) -> int:
        """The position of `grade` in `grades` (0 = the highest)."""
        return self.grades.index(grade)


class CourtListPeriod(Strict):
    """From day `from_day` on (until the next period), the court list's inflow and
    outflow scaled: a list whose growth and restorations change over the years."""

    from_day: int = Field(ge=0, le=18_263, description="First day of the period [day].")
    filing: float = Field(
        1.0, ge=0, le=1,
        description="Share of the triggering judgment defaults that open an enforcement "
        "case in this period.",
    )
    end_factor: float = Field(
        1.0, ge=0, le=20,
        description="Multiplier of the daily hazards by which cases end in this period "
        "(payment, settlement, termination for no assets).",
    )


class CourtList(Strict):
    enabled: bool = Field(False, description="Run the dishonest-persons list.")
    triggers: list[Name] = Field(
        default_factory=lambda: ["judgment_default", "firm_judgment_default"],
        max_length=ENTRIES_MAX,
        description="Behaviours that open an enforcement case.",
    )
    grace_days: int = Field(
        30, ge=0, le=365, description="Days between judgment and listing if unpaid [days]."
    )
    pay_hazard: float = Field(
        0.01, ge=0, le=1, description="Daily probability an able debtor pays [1/day]."
    )
    unable_pay_factor: float = Field(
        0.2, ge=0, le=1, description="Payment hazard of debtors unable to pay, relative."
    )
    listed_pay_factor: float = Field(
        1.5, ge=0, le=20, description="Payment hazard while listed, relative (pressure)."
    )
    other_grounds_share: float = Field(
        0.3, ge=0, le=1,
        description="Share of unable debtors listed on another ground (hiding assets, ...); "
        "the rest are not listed.",
    )
    term_days: int = Field(
        730, ge=1, le=36_500, description="Listing term on grounds other than refusing [days]."
    )
    extension_prob: float = Field(
        0.0, ge=0, le=1,
        description="Probability a fixed-term listing still unpaid at its end is extended.",
    )
    extension_years: IntPair = Field(
        (1, 3), description="Range of an extension, drawn uniformly [years]."
    )
    delist_days: IntPair = Field(
        (1, 5), description="Calendar days from payment to delisting (3 working days)."
    )
    contest_prob: float = Field(
        0.7, ge=0, le=1, description="Share of people with a false case who request correction."
    )
    correction_days: int = Field(
        18, ge=1, le=365, description="Review (15 days) plus fixing (3 working days) [days]."
    )
    correction_success: float = Field(
        0.9, ge=0, le=1, description="Probability a correction request about a false case succeeds."
    )
    appeal_prob: float = Field(
        0.5, ge=0, le=1,
        description="Share of people whose correction failed who appeal to the higher court.",
    )
    appeal_days: int = Field(
        25, ge=1, le=365,
        description="Days from a failed correction to the appeal decision (10 to lodge + 15).",
    )
    appeal_success: float = Field(
        0.5, ge=0, le=1, description="Probability an appeal about a false case succeeds."
    )
    # How cases of debtors unable to pay end, besides payment (competing daily hazards).
    no_assets_hazard: float = Field(
        0.0055, ge=0, le=1,
        description="Daily probability that enforcement of an unable debtor's case is "
        "terminated for this time, no assets found (about 6 months) [1/day].",
    )
    no_assets_delist_days: int = Field(
        730, ge=1, le=3650,
        description="Days from termination for this time to delisting: at least two "
        "fruitless asset searches, six months apart, then the deletion [days].",
    )
    settlement_hazard: float = Field(
        0.001, ge=0, le=1,
        description="Daily probability that an unable debtor settles with the creditor and "
        "fulfils the settlement [1/day].",
    )
    settlement_share: float = Field(
        0.5, ge=0, le=1,
        description="Share of the debt a settling debtor pays (a fulfilled settlement counts "
        "as a payment).",
    )
    death_hazard: float = Field(
        2e-5, ge=0, le=1,
        description="Daily probability that an unable debtor dies, which terminates "
        "enforcement (no estate); person cases only; not applied when demography runs "
        "(real deaths end the cases then) [1/day].",
    )
    schedule: list[CourtListPeriod] = Field(
        default_factory=list, max_length=ENTRIES_MAX,
        description="Periods from which filing and the ending of cases change (before "
        "the first: filing 1, end_factor 1); from_day increasing.",
    )

    @model_validator(mode="after")
    def _check(self) -> CourtList:
        ends = self.no_assets_hazard + self.settlement_hazard + self.death_hazard
        if ends > 1:
            raise ValueError("no_assets_hazard + settlement_hazard + death_hazard: a daily "
                             f"probability, need a sum of at most 1, got {ends:g}")
        starts = [period.from_day for period in self.schedule]
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(f"schedule: from_day must increase, got {starts}")
        for key, (lo, hi), top in (("delist_days", self.delist_days, 365),
                                   ("extension_years", self.extension_years, 10)):
            if not 1 <= lo <= hi <= top:
                raise ValueError(f"{key}: need 1 <= low <= high <= {top}, got [{lo}, {hi}]")
        return self



DIMENSIONS = ("history", "capacity", "behaviour", "identity", "relationships")


class CompositeSystem(Strict):
    """A composite score (Sesame, Honest Shanghai, City Brain): weighted dimensions,
    each in [0, 1], refreshed on a cadence, for the people who take part."""

    enabled: bool = Field(False, description="Run a composite score.")
    low: int = Field(350, ge=0, le=10_000, description="Lowest score [points].")
    high: int = Field(950, ge=1, le=10_000, description="Highest score [points].")
    opt_in: float = Field(
        1.0, ge=0, le=1, description="Share of adults who take part (1 = mandatory)."
    )
    opt_in_income_elasticity: float = Field(
        0.0, ge=0, le=5,
        description="Who opts in: log-odds of taking part rise by this per unit of "
        "log(income / median income).",
    )
    opt_in_elder_factor: float = Field(
        1.0, ge=0, le=1, description="Odds of taking part of people 65+, relative."
    )
    refresh_days: int = Field(30, ge=1, le=365, description="Days between refreshes [days].")
    weights: dict[Literal[DIMENSIONS], Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"history": 0.35, "capacity": 0.25, "behaviour": 0.2,
                                 "identity": 0.15, "relationships": 0.05},
        description="Weight of each dimension (normalised to sum 1).",
    )
    history_marks: dict[Name, Annotated[float, Field(ge=-100, le=100)]] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Change of the history dimension's log-odds per recorded behaviour, "
        "keyed by behaviour (negative lowers) [log-odds].",
    )
    behaviour_marks: dict[Name, Annotated[float, Field(ge=-100, le=100)]] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Change of the behaviour dimension's log-odds per recorded behaviour "
        "[log-odds].",
    )
    history_bias: float = Field(
        0.0, ge=-10, le=10, description="Log-odds of the history dimension with no marks."
    )
    behaviour_bias: float = Field(
        0.0, ge=-10, le=10, description="Log-odds of the behaviour dimension with no marks."
    )
    parent_bonus: float = Field(
        0.0, ge=-10, le=10,
        description="Added to the behaviour dimension's log-odds of parents (Sesame "
        "rewards parenthood) [log-odds].",
    )
    memory_days: float = Field(
        730.0, ge=1, le=36_500,
        description="Marks fade with this e-folding time [days].",
    )
    capacity_income_share: float = Field(
        0.7, ge=0, le=1,
        description="Capacity = this x income percentile + the rest x (1 - economic stress).",
    )
    listing_penalty: int = Field(
        0, ge=0, le=10_000,
        description="Points taken off the score while on the court list [points].",
    )
    bands: dict[Name, Annotated[int, Field(ge=0, le=10_000)]] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Published bands: name -> lowest score of the band [points].",
    )
    transparency: float = Field(
        1.0, ge=0, le=1,
        description="1 = weights published, 0 = black box (people can only guess what "
        "counts).",
    )
    prune_below: int = Field(
        0, ge=0, le=10_000,
        description="Contacts drop ties to people whose score falls below this, since "
        "relationships count (0 = never) [points].",
    )
    prune_prob: float = Field(
        0.05, ge=0, le=1,
        description="Probability each non-family contact drops the tie when prune_below "
        "is crossed.",
    )

    @model_validator(mode="after")
    def _check(self) -> CompositeSystem:
        if self.low >= self.high:
            raise ValueError(f"high: must exceed low ({self.low}), got {self.high}")
        if sum(self.weights.values()) <= 0:
            raise ValueError("weights: at least one weight must be > 0")
        for name, floor in self.bands.items():
            if not self.low <= floor <= self.high:
                raise ValueError(
                    f"bands.{name}: must lie in [low, high] = [{self.low}, {self.high}]"
                )
        return self


class PeerRating(Strict):
    """Nosedive / Peeple: people rate each other 1-5 after interactions."""

    enabled: bool = Field(False, description="Run a peer-rating system.")
    interactions: float = Field(
        0.5, ge=0, le=20,
        description="Interactions per adult per day with a random contact; each rates "
        "the other [1/day].",
    )
    initial: float = Field(4.0, ge=1, le=5, description="Everyone's starting rating.")
    prior_weight: float = Field(
        5.0, ge=0.01, le=1e4,
        description="The starting rating counts as this many ratings from a rater "
        "rated `initial` [ratings].",
    )
    memory_days: float = Field(
        180.0, ge=1, le=36_500, description="Ratings fade with this e-folding time [days]."
    )
    noise: float = Field(0.7, ge=0, le=5, description="Sd of a rating's noise [stars].")
    status_bias: float = Field(
        1.0, ge=0, le=10,
        description="Stars added per star the ratee stands above the rater (people rate "
        "up those above them and down those who have fallen) [stars/star].",
    )
    prune_below: float = Field(
        0.0, ge=0, le=5,
        description="Contacts drop ties to people whose rating falls below this "
        "(0 = never) [stars].",
    )
    prune_prob: float = Field(
        0.05, ge=0, le=1,
        description="Probability each non-family contact drops the tie when prune_below "
        "is crossed.",
    )


Severity = Literal["minor", "moderate", "serious"]


class FirmLists(Strict):
    """Credit China: firms' public records with display periods, black and red lists."""

    enabled: bool = Field(False, description="Run firm black and red lists.")
    severity: dict[Name, Severity] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Severity of each recorded firm behaviour (minor, moderate, serious).",
    )
    display_days: dict[Severity, IntPair] = Field(
        default_factory=lambda: {"minor": (90, 90), "moderate": (90, 365),
                                 "serious": (365, 1095)},
        description="Range of the public display period by severity, drawn uniformly "
        "[days].",
    )
    blacklist_from: Severity = Field(
        "serious", description="Lowest severity that puts a firm on the blacklist."
    )
    false_rate: float = Field(
        0.0, ge=0, le=0.01,
        description="False items (data-entry errors) per firm per day, of a behaviour with "
        "a severity drawn in proportion to base rates [items/day].",
    )
    red_after_days: int = Field(
        730, ge=0, le=10_000,
        description="A firm with no displayed item for this long is red-listed "
        "(0 = no red list) [days].",
    )

    @model_validator(mode="after")
    def _check(self) -> FirmLists:
        for sev in ("minor", "moderate", "serious"):
            if sev not in self.display_days:
                raise ValueError(f"display_days: needs minor, moderate and serious; {sev} missing")
            lo, hi = self.display_days[sev]
            if not 1 <= lo <= hi <= 36_500:
                raise ValueError(
                    f"display_days.{sev}: need 1 <= low <= high <= 36500, got [{lo}, {hi}]"
                )
        return self


# A condition is a short formula ('grade<=C', 'listed and score<600'); a longer one is a
# mistake (each term is evaluated for people every day).
CONDITION_MAX = 200


class Gate(Strict):
    domain: Domain = Field(description="Domain of the service.")
    provider: ShortText = Field(
        "", description="Who applies it (airline, bank, ...); free text."
    )
    condition: str = Field(
        max_length=CONDITION_MAX,
        description="Who the gate reaches: comparisons of standings the running systems "
        "provide, combined with 'and' / 'or' and parentheses: 'listed' (court list), "
        "'blacklisted' (legal representative of a firm on the firm blacklist), 'grade<=X' / "
        "'grade>=X' (points grade, AAA..D unless points.grades "
        "names others; a further points system's as '<name>.grade<=X'), 'score<N' / "
        "'score>=N' (composite score, N in "
        "[0, 10000]), 'rating<N' / 'rating>=N' (peer rating, N in [0, 5]); "
        "e.g. 'listed or grade<=C'."
    )
    effect: Literal["deny", "surcharge", "perk", "shame"] = Field(
        "deny", description="What happens to a person who meets the condition."
    )
    use_rate: float = Field(
        0.0, ge=0, le=1,
        description="Daily rate at which a person seeks the service [uses/day]; "
        "0 = applied once, when the condition starts.",
    )
    income_driven: bool = Field(
        False, description="Use rate scales with income (capped at 3x the median)."
    )
    loss_days: float = Field(
        0.0, ge=-365, le=3650,
        description="Economic effect per application [days of income]; negative = gain.",
    )
    reaches_children: bool = Field(
        False, description="Applies to the children in the household (school places)."
    )
    _parsed: Any = PrivateAttr(None)
    _parsed_text: str | None = PrivateAttr(None)  # the condition `_parsed` was made from

    @property
    def parsed(self) -> Any:
        """The condition as a tree (credsim.conditions), parsed when the scenario that
        holds the gate was read (over the standings of the systems it runs). A condition
        assigned since then is parsed now, over every registered module's standings
        with their default names (the scenario's own checks run when it is validated
        again, as credsim.run does)."""
        if self._parsed_text != self.condition:
            self._parsed, self._parsed_text = parse_condition(self.condition), self.condition
        return self._parsed


def _check_gate(gname: str, g: Gate, standings: dict[str, Any]) -> None:
    """Parse a gate's condition over the standings the scenario's systems provide, check
    it suits the gate's effect, and keep its tree on the gate."""
    from credsim.conditions import parse, rewards, standings_of

    key = f"gates.{gname}"
    try:
        cond = parse(g.condition, standings)
    except ValueError as exc:
        raise ValueError(f"{key}.condition: {exc}") from None
    perk = rewards(cond)
    if perk is None:
        raise ValueError(
            f"{key}.condition: {g.condition!r} mixes terms that reward a high standing "
            "('>=', '>') with terms that restrict a low one ('<', '<=', flags); a gate "
            "is a sanction or a perk, so use one kind"
        )
    if perk and g.effect != "perk":
        raise ValueError(
            f"{key}.condition: {g.condition!r} rewards the well rated, so effect must be "
            "'perk'; sanctions take flags ('listed', 'blacklisted') and '<', '<=' "
            "comparisons ('grade<=X', 'score<N', 'rating<N')"
        )
    if not perk and g.effect == "perk":
        raise ValueError(
            f"{key}.effect: 'perk' needs a condition that rewards the well rated "
            f"('grade>=X', 'score>=N', 'rating>=N'), got {g.condition!r}"
        )
    unrecorded = [s for s in standings_of(cond) if standings[s].ledger_kind is None]
    if unrecorded and g.use_rate <= 0:
        raise ValueError(
            f"{key}.use_rate: a gate on {unrecorded[0]} applies when a person seeks the "
            "service, so it needs use_rate > 0"
        )
    g._parsed, g._parsed_text = cond, g.condition


def scenario_standings(scenario: Scenario, running: bool = True) -> dict[str, Any]:
    """The standings gate conditions may read in `scenario`, by the names they use there
    (a further instance's qualified by its name: `province.grade`): of the systems it
    runs, or (running=False) of every system it could switch on."""
    from credsim.modules.registry import kinds

    found: dict[str, Any] = {}
    for cls in kinds().values():
        if running:
            for inst in cls.instances(scenario):
                found.update(inst.standings())
        elif cls.Params is None:
            own = cls.instances(scenario)
            found.update(own[0].standings() if own else cls.standings_for(None))
    return found


def parse_condition(cond: str, scenario: Scenario | None = None) -> Any:
    """A gate's condition as a tree (credsim.conditions: Term, Both, Either), e.g.
    'grade<=C' -> Term('grade', '<=', 4, 'C'), over the standings `scenario` provides (or
    every registered module's, with their default names); ConditionError (a ValueError
    and an InputError) saying what is allowed."""
    from credsim.conditions import parse, registered

    return parse(cond, registered() if scenario is None else scenario_standings(scenario))


class Adaptation(Strict):
    enabled: bool = Field(True, description="People adapt their behaviour.")
    deterrence: float = Field(
        0.3, ge=0, le=1, description="Fall of a person's scored misbehaviour after a deduction."
    )
    general_deterrence: float = Field(
        0.15, ge=0, le=1,
        description="Fall of everyone's scored misbehaviour under published rules.",
    )
    chilling: float = Field(
        0.5, ge=0, le=1, description="Fall of voice where speech is penalised, times its detection."
    )
    personal_chilling: float = Field(
        0.5, ge=0, le=1, description="Further fall of a person's voice after a speech deduction."
    )
    performative: float = Field(
        0.3, ge=0, le=5, description="Rise of rewarded good acts under published rules."
    )
    prune_prob: float = Field(
        0.05, ge=0, le=1,
        description="Probability each non-family contact drops a tie to someone who falls "
        "to the prune grade.",
    )
    prune_grade: Grade = Field(
        "C", description="Grade of the main points system at or below which contacts drop "
        "ties (one of points.grades).")
    floor: float = Field(0.1, ge=0, le=1, description="Lowest personal rate multiplier.")


class Feedback(Strict):
    enabled: bool = Field(True, description="Sanctions and debts hit savings, raising stress.")
    buffer_months: float = Field(
        3.0, gt=0, le=120, description="Savings below this many months of income cause stress."
    )
    recovery: float = Field(
        0.1, ge=0, le=1, description="Share of daily income saved while below the buffer."
    )


class Safeguards(Strict):
    """Levers that protect people from the system's errors."""

    notice_days: int = Field(
        0, ge=0, le=365,
        description="A deduction takes effect only after this notice period, in which a "
        "false one can be contested (0 = no notice) [days].",
    )
    contest_prob: float = Field(
        0.7, ge=0, le=1,
        description="Share of people given notice of a false record who contest it.",
    )
    contest_success: float = Field(
        0.9, ge=0, le=1, description="Probability a contested false record is struck out."
    )
    review_capacity: float = Field(
        0.0, ge=0, le=1e6,
        description="Deductions a human review team checks per day per million people "
        "(0 = no review) [reviews/day/1e6].",
    )
    review_accuracy: float = Field(
        0.9, ge=0, le=1, description="Probability a reviewed false record is struck out."
    )
    expiry_days: int = Field(
        0, ge=0, le=3650,
        description="A deduction is reversed this long after it took effect (0 = never) [days].",
    )
    proportionality_cap: int = Field(
        0, ge=0, le=100_000,
        description="Largest deduction one record may cause (0 = no cap) [points].",
    )
    domain_separation: bool = Field(
        False, description="Gates apply only when triggered by a record of their own domain."
    )


# Lower bounds of the life table's age groups [years]: 0, 1-4, 5-9, ..., 95-99, 100+.
DEATH_AGES = (0, 1, *range(5, 101, 5))
# Lower bounds of the mother's age groups of the fertility table: 15-19, ..., 45-49.
FERTILITY_AGES = tuple(range(15, 50, 5))
# Annual death probability in each age group: Gompertz-Makeham (A = 0.0003, c = 0.09,
# B fitted) with infant mortality 5.6 per 1000, life expectancy 77.9 (docs/odd.md).
CHINA_2020_DEATH = (0.0056, 0.00035, 0.00038, 0.00042, 0.00049, 0.0006, 0.00078, 0.00105,
                    0.00147, 0.00213, 0.00318, 0.00481, 0.00736, 0.01135, 0.01757, 0.02725,
                    0.04224, 0.06529, 0.10033, 0.15265, 0.22864, 0.33433)
# Births per woman-year by the mother's age group: the 2020 census pattern of Fuzhou
# scaled to China's total fertility of 1.3 in 2020 (docs/odd.md).
CHINA_2020_FERTILITY = (0.00326, 0.04341, 0.10570, 0.07046, 0.02886, 0.00686, 0.00145)


class Demography(Strict):
    enabled: bool = Field(
        False, description="Run births, deaths and ageing (off: a fixed population).")
    death_probability: list[Annotated[float, Field(ge=0, lt=1)]] = Field(
        list(CHINA_2020_DEATH), min_length=len(DEATH_AGES), max_length=len(DEATH_AGES),
        description="Annual probability of dying at each age of the groups 0, 1-4, 5-9, "
        "..., 95-99, 100+ [per year].")
    fertility: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        list(CHINA_2020_FERTILITY), min_length=len(FERTILITY_AGES),
        max_length=len(FERTILITY_AGES),
        description="Births per woman-year by the mother's age group 15-19, ..., 45-49 "
        "[births per woman-year].")
    female_share_at_birth: float = Field(
        0.5, ge=0, le=1, description="Share of girls among the born (assumed).")
    adult_age: int = Field(18, ge=1, le=30, description="Age of coming of age [years].")
    retirement_age: int = Field(
        60, ge=31, le=100, description="Age at which an adult becomes an elder [years].")


class DatingPlatform(Strict):
    """A dating platform that shows scores on profiles and ranks them by score."""

    enabled: bool = Field(
        False, description="Run the platform: its users meet through it (off: every single "
        "meets offline, as without the platform).")
    user_share: float = Field(
        0.3, ge=0, le=1, description="Share of people who use the platform when single "
        "(assumed).")
    display_share: float = Field(
        0.5, ge=0, le=1, description="Share of scored users who opt in to show their score "
        "on their profile (assumed).")
    ranking_strength: float = Field(
        0.8, ge=0, le=1, description="Weight of the shown score in a profile's rank, against "
        "the person's other appeal (0: scores play no part; assumed).")
    profiles_seen: int = Field(
        30, ge=1, le=1000, description="Profiles a user looking for a partner is shown at a "
        "meeting (assumed).")


class Partnering(Strict):
    """Singles who meet and form couples, couples who split (needs demography)."""

    enabled: bool = Field(
        False, description="Run partnering and divorce, with births to partnered women only "
        "(needs demography.enabled).")
    meeting_rate: float = Field(
        0.1, ge=0, le=10, description="Rate at which a single adult woman meets a partner "
        "[per year]; 0.1 gives a mean age at first union near 28 (assumed, from China's "
        "2020 census mean age at first marriage, 28.7).")
    homophily_region: float = Field(
        0.8, ge=0, le=1, description="Share of meetings among people of the same region "
        "beyond chance (assumed).")
    homophily_group: float = Field(
        0.7, ge=0, le=1, description="Share of meetings among people of the same audit group "
        "beyond chance (assumed).")
    homophily_school: float = Field(
        0.4, ge=0, le=1, description="Share of meetings among people of the same school type "
        "beyond chance (assumed).")
    divorce_rate: float = Field(
        0.01, ge=0, le=1, description="Rate at which a couple splits [per couple per year]; "
        "from China's crude divorce rate of 3.2 per 1,000 people in 2017 over about 0.33 "
        "couples per person.")
    platform: DatingPlatform = Field(default_factory=DatingPlatform)


class Schooling(Strict):
    """Children's schools (public, private, top), gated on the parents' standing, and
    their effect on adult income (needs demography)."""

    enabled: bool = Field(
        False, description="Children enter school at entry_age; the school sets the adult's "
        "income (needs demography.enabled).")
    entry_age: int = Field(
        6, ge=3, le=10, description="Age of entering school [years] (China's compulsory "
        "education law: 6).")
    top_share: float = Field(
        0.05, ge=0, le=1, description="Places in top schools per entering cohort [share of "
        "the cohort] (assumed).")
    top_income_weight: float = Field(
        0.5, ge=0, le=10, description="Weight of the parents' log income (in standard "
        "deviations) beside a merit draw in the rank for top places (assumed).")
    top_condition: str = Field(
        "", max_length=CONDITION_MAX, description="A child is refused a top place when a "
        "parent meets this condition (gate syntax, e.g. 'listed or grade<=C'; '' = no "
        "gate).")
    private_condition: str = Field(
        "", max_length=CONDITION_MAX, description="A child is refused a private place when a "
        "parent meets this condition, beside the gates that reach children ('' = only "
        "those).")
    income_factor_private: float = Field(
        1.15, gt=0, le=10, description="Adult income of a private-school pupil relative to a "
        "public-school one (assumed).")
    income_factor_top: float = Field(
        1.4, gt=0, le=10, description="Adult income of a top-school pupil relative to a "
        "public-school one (assumed).")
    _parsed: dict[str, Any] = PrivateAttr(default_factory=dict)

    def parsed(self, which: str) -> Any:
        """The condition `which` ('top' or 'private') as a tree, or None if empty."""
        text = getattr(self, f"{which}_condition")
        if not text:
            return None
        if self._parsed.get(which, (None, ""))[1] != text:
            self._parsed[which] = (parse_condition(text), text)
        return self._parsed[which][0]


class Inheritance(Strict):
    """A newborn's voice and compliance passed from the parents and peers (needs
    demography)."""

    enabled: bool = Field(
        False, description="Newborns take voice and compliance from their parents and peers "
        "(off: from the population's distributions).")
    heritability: float = Field(
        0.4, ge=0, le=1, description="Weight of the parents' mean trait (personality and "
        "political attitudes: about 0.4 in twin studies).")
    peer_weight: float = Field(
        0.2, ge=0, le=1, description="Weight of the mean trait of the adults of the child's "
        "region (assumed).")
    chilled_voice: bool = Field(
        True, description="The voice a child takes is the parents' expressed voice: their "
        "voice times their chilling.")

    @model_validator(mode="after")
    def _check(self) -> Inheritance:
        if self.heritability + self.peer_weight > 1 + 1e-12:
            total = self.heritability + self.peer_weight
            # The key first (no spaces), so that the message names inheritance.heritability.
            raise ValueError("heritability: heritability + peer_weight are weights of a mean "
                             f"and must sum to at most 1, got {total:g}")
        return self


class Threats(Strict):
    """Manipulation of the system's records: insiders, informants, colluders."""

    insiders_per_million: float = Field(
        0.0, ge=0, le=1e6,
        description="Staff with edit rights who fabricate records [per million people].",
    )
    insider_edit_rate: float = Field(
        0.05, ge=0, le=10, description="Fabricated records per insider per day [edits/day]."
    )
    insider_target: Literal["random", "critics", "enemies"] = Field(
        "random",
        description="Whom insiders target: anyone, critics (the most vocal 10 %), or a few "
        "personal enemies of each insider.",
    )
    insider_behaviour: Name = Field(
        "other_bad_faith", description="The scored behaviour an insider's edit records."
    )
    enemies_per_insider: int = Field(
        3, ge=1, le=1000, description="Personal enemies of each insider (target 'enemies')."
    )
    audit_prob: float = Field(
        0.0, ge=0, le=1, description="Probability an audit catches an insider's edit."
    )
    audit_days: int = Field(
        60, ge=1, le=3650,
        description="Days from an edit taking effect to its reversal when caught [days].",
    )
    informant_rate: float = Field(
        0.0, ge=0, le=0.1,
        description="Malicious reports per adult per day against a contact [reports/day].",
    )
    informant_behaviour: Name = Field(
        "rumour", description="The scored behaviour a malicious informant reports."
    )
    colluders_per_million: float = Field(
        0.0, ge=0, le=1e6,
        description="People in rings that vouch for each other's good deeds to cross a "
        "threshold [per million people].",
    )
    collusion_behaviour: Name = Field(
        "volunteering", description="The rewarded behaviour colluders certify for each other."
    )
    collusion_rate: float = Field(
        0.05, ge=0, le=10,
        description="Fabricated certificates per colluder per day while below the target "
        "[records/day].",
    )
    collusion_target: Grade = Field(
        "AA", description="Grade colluders aim for; they stop once they reach it (one of "
        "points.grades)."
    )


# --- systems from installed packages --------------------------------------------------------
def _system_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A [systems.<name>] table: its kind, which must be a registered kind with Params, and
    its parameters as that kind's Params model validates them (defaults filled in, so
    `credsim show` lists every one). The model's errors keep their keys."""
    from credsim.modules.registry import kinds, plugin_kinds

    kind = entry.get("kind")
    plugins = sorted(k for k, c in plugin_kinds().items() if c.Params is not None)
    known = ", ".join(plugins) or "none installed"
    if kind is None:
        raise ValueError(f"kind: missing; name the system's kind (kinds from installed "
                         f"packages: {known})")
    if not isinstance(kind, str):
        raise ValueError(f"kind: expected the name of a kind, got {short_repr(kind)}")
    cls = kinds().get(kind)
    model = None if cls is None else cls.table_model()
    if cls is not None and model is None:
        raise ValueError(f"kind: {kind!r} is built into credsim and set in its own "
                         "section, not under [systems]")
    if cls is None:
        close = difflib.get_close_matches(kind, plugins, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"kind: unknown kind {short_repr(kind, 50)}{hint}; kinds from "
                         f"installed packages: {known}")
    data = {k: v for k, v in entry.items() if k != "kind"}
    if cls.Params is None:  # a further instance of a built-in kind runs unless switched off
        data.setdefault("enabled", True)
    params = model.model_validate(data)
    return {"kind": kind, **params.model_dump(mode="json")}


SystemEntry = Annotated[dict[str, Any], AfterValidator(_system_entry)]


def _check_systems(s: Scenario) -> None:
    """One table per kind, but for kinds that run several instances; a further instance
    of a built-in kind beside the one its own section enables, and named unlike any
    kind (its columns and standings carry its name)."""
    from credsim.modules.registry import kinds

    known = kinds()
    first: dict[str, str] = {}
    for name, entry in s.systems.items():
        kind = entry["kind"]
        cls = known[kind]
        # A table may take its own kind's name, unless the kind's own section has it.
        if name in known and (name != kind or cls.Params is None):
            raise ValueError(f"systems.{name}: {name!r} is the name of a module kind; name "
                             "the system otherwise (its columns and standings carry its name)")
        if kind in first and not cls.several:
            raise ValueError(f"systems.{name}.kind: {kind!r} already runs as "
                             f"systems.{first[kind]}; a scenario runs this kind once")
        first.setdefault(kind, name)
        if cls.Params is None and entry.get("enabled") and not getattr(s, kind).enabled:
            raise ValueError(f"systems.{name}: a further {kind} system runs beside the "
                             f"scenario's main one; set {kind}.enabled = true first")


class FirmTurnover(Strict):
    """Firms that close and are founded, over the years of a run with demography."""

    exit_rate: float = Field(
        0.1, ge=0, le=1,
        description="Annual probability that a firm closes, with demography on; a new firm "
        "is founded in its place (same region), so the number of firms stays; a firm with "
        "an open court case or a public record item on display does not close [per year].",
    )


class Scenario(Strict):
    name: ShortText = Field(
        "custom", description="Short name of the scenario; free text."
    )
    description: LongText = Field(
        "", description="One line on what it models; free text."
    )
    run: RunParams = Field(default_factory=RunParams)
    population: PopulationParams = Field(default_factory=PopulationParams)
    graph: GraphParams = Field(default_factory=GraphParams)
    channels: dict[Name, Channel] = Field(default_factory=dict, max_length=ENTRIES_MAX)
    behaviours: dict[Name, Behaviour] = Field(default_factory=dict, max_length=ENTRIES_MAX)
    points: PointsSystem = Field(default_factory=PointsSystem)
    court_list: CourtList = Field(default_factory=CourtList)
    composite: CompositeSystem = Field(default_factory=CompositeSystem)
    rating: PeerRating = Field(default_factory=PeerRating)
    firm_lists: FirmLists = Field(default_factory=FirmLists)
    gates: dict[Name, Gate] = Field(default_factory=dict, max_length=ENTRIES_MAX)
    adaptation: Adaptation = Field(default_factory=Adaptation)
    feedback: Feedback = Field(default_factory=Feedback)
    safeguards: Safeguards = Field(default_factory=Safeguards)
    threats: Threats = Field(default_factory=Threats)
    demography: Demography = Field(default_factory=Demography)
    partnering: Partnering = Field(default_factory=Partnering)
    schooling: Schooling = Field(default_factory=Schooling)
    inheritance: Inheritance = Field(default_factory=Inheritance)
    firms: FirmTurnover = Field(default_factory=FirmTurnover)
    systems: dict[Name, SystemEntry] = Field(
        default_factory=dict, max_length=ENTRIES_MAX,
        description="Systems from installed packages: [systems.<name>] with kind = the "
        "system's kind and its parameters (docs/plugins.md).",
    )

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        _check_systems(self)
        n_groups = len(self.population.group_shares)
        for cname, ch in self.channels.items():
            for key in ("detection_by_group", "false_rate_by_group"):
                vals = getattr(ch, key)
                if len(vals) not in (1, n_groups):
                    raise ValueError(
                        f"channels.{cname}.{key}: give 1 value or one per group ({n_groups})"
                    )
            if max(ch.detection_by_group) * ch.detection > 1 + 1e-9:
                raise ValueError(
                    f"channels.{cname}: detection x detection_by_group exceeds 1"
                )
        for bname, b in self.behaviours.items():
            if b.actor == "firm" and b.driver not in ("noncompliance", "none"):
                raise ValueError(
                    f"behaviours.{bname}.driver: firms have only a compliance trait; "
                    "allowed for firm behaviours: noncompliance, none"
                )
            if b.channel not in self.channels:
                raise ValueError(
                    f"behaviours.{bname}.channel: unknown channel {b.channel!r}; "
                    f"defined channels: {', '.join(sorted(self.channels)) or 'none'}"
                )
        for where, p in points_systems(self, enabled=False):
            for section, keys in ((f"{where}.deltas", p.deltas),
                                  (f"{where}.instant_grade", p.instant_grade)):
                for k in keys:
                    if k not in self.behaviours:
                        raise ValueError(f"{section}.{k}: unknown behaviour; {_known(self)}")
                    if self.behaviours[k].actor == "firm":
                        raise ValueError(f"{section}.{k}: firms are not scored by a points "
                                         "system")
        t = self.threats
        for key, name, active in (
            ("insider_behaviour", t.insider_behaviour, t.insiders_per_million > 0),
            ("informant_behaviour", t.informant_behaviour, t.informant_rate > 0),
        ):
            if not active:
                continue
            if not self.points.enabled:
                raise ValueError(f"threats.{key}: manipulating records needs points.enabled")
            if self.points.deltas.get(name, 0) >= 0 or name in self.points.instant_grade:
                # Grade caps are excluded: an audit reverses an edit's points, not a cap.
                raise ValueError(
                    f"threats.{key}: {name!r} is not a deduction of the points system "
                    "(without a grade cap); allowed: " + ", ".join(
                        k for k, v in self.points.deltas.items()
                        if v < 0 and k not in self.points.instant_grade)
                )
        for k in self.court_list.triggers if self.court_list.enabled else []:
            if k not in self.behaviours:
                raise ValueError(f"court_list.triggers: unknown behaviour {k!r}; {_known(self)}")
        if t.colluders_per_million > 0:
            if not self.points.enabled:
                raise ValueError("threats.colluders_per_million: collusion needs points.enabled")
            grades = self.points.grades
            if t.collusion_target == grades[-1]:
                raise ValueError(f"threats.collusion_target: {grades[-1]} is the lowest "
                                 f"grade, nothing to cross; allowed: {', '.join(grades[:-1])}")
            if self.points.deltas.get(t.collusion_behaviour, 0) <= 0:
                raise ValueError(
                    f"threats.collusion_behaviour: {t.collusion_behaviour!r} is not rewarded by "
                    "the points system; allowed: " + ", ".join(
                        k for k, v in self.points.deltas.items() if v > 0)
                )
        c = self.composite
        if c.enabled:
            for section, keys in (("composite.history_marks", c.history_marks),
                                  ("composite.behaviour_marks", c.behaviour_marks)):
                for k in keys:
                    if k not in self.behaviours:
                        raise ValueError(f"{section}.{k}: unknown behaviour; {_known(self)}")
                    if self.behaviours[k].actor == "firm":
                        raise ValueError(f"{section}.{k}: firms are not scored by the composite")
            if c.listing_penalty and not self.court_list.enabled:
                raise ValueError("composite.listing_penalty: needs court_list.enabled")
        if self.firm_lists.enabled:
            for k in self.firm_lists.severity:
                if k not in self.behaviours:
                    raise ValueError(f"firm_lists.severity.{k}: unknown behaviour; {_known(self)}")
                if self.behaviours[k].actor != "firm":
                    raise ValueError(
                        f"firm_lists.severity.{k}: only firm behaviours go on firm lists"
                    )
        _check_grade_names(self)
        running = scenario_standings(self)
        # Conditions parse over every standing a system could provide, so that one on a
        # system that is switched off is told which system to switch on.
        known = {**scenario_standings(self, running=False), **running}
        for gname, g in self.gates.items():
            _check_gate(gname, g, known)
            _check_provided(gname, g, running)
        _check_columns(self)
        _check_score_range(self)
        _check_families(self, known, running)
        return self

    def to_toml(self) -> str:
        """The scenario as a TOML file that `credsim run` and `credsim.load` read back to
        the same scenario."""
        import tomli_w

        data = self.model_dump(mode="json")
        if not data["systems"]:  # no empty [systems] table in every scenario file
            del data["systems"]
        return tomli_w.dumps(data)


# --- scores stay within their 32-bit range --------------------------------------------------
# A points score is a 32-bit integer. With every delta, rate and the run's length at their
# limits, the sum of deductions could pass 2^31 and wrap round without a word. A person
# has at most a few records of one behaviour a day, plus threats' edits; SCORE_SAFETY
# covers that generously, so only scenarios far outside any reported system are refused.
SCORE_LIMIT = 2**31 - 1
SCORE_SAFETY = 16  # records per behaviour per person per day, an upper bound with threats


def _check_score_range(s: Scenario) -> None:
    for where, p in points_systems(s):
        daily = sum(abs(d) for d in p.deltas.values()) + abs(p.listing_delta)
        reach = abs(p.initial) + s.run.days * SCORE_SAFETY * daily
        if reach > SCORE_LIMIT:
            raise ValueError(
                f"{where}.deltas: over {s.run.days:,} days these deltas could move a score "
                f"by up to {reach:,.0f} points, past the score's range of "
                f"±{SCORE_LIMIT:,}; use smaller deltas or fewer days"
            )


def points_systems(s: Scenario, enabled: bool = True) -> list[tuple[str, PointsSystem]]:
    """(where it is set, parameters) of each points system of `s`: the main one in
    [points], then the further ones in [systems.<name>] tables of kind "points"
    (enabled=False: also those switched off)."""
    found = [("points", s.points)]
    found += [(f"systems.{name}", PointsSystem.model_validate(
        {k: v for k, v in e.items() if k != "kind"}))
        for name, e in s.systems.items() if e["kind"] == "points"]
    return [(w, p) for w, p in found if p.enabled or not enabled]


# --- timeseries columns named after user names -------------------------------------------
# The daily timeseries has a column per gate (`gate_<name>`, `gate_<name>_wrongful`, in
# engine.Simulation._daily_row) and per composite band (`band_<name>`, beside the fixed
# `band_below_lowest`, in systems/composite.py). The row is a dict: two names that give
# the same column would silently overwrite one count with another. DuckDB, which serves
# `credsim query`, matches column names without regard to case, so columns that differ
# only in case collide too. Checked whether or not the system is enabled, so that a
# scenario stays valid when an override switches it on.
FIXED_NAMED_COLUMNS = {"band_below_lowest": "the count below the lowest band"}


def named_columns(s: Scenario) -> list[tuple[str, str]]:
    """(column, what makes it) for each timeseries column built from a user's name."""
    cols: list[tuple[str, str]] = []
    for g in s.gates:
        cols += [(f"gate_{g}", f"gates.{g}"), (f"gate_{g}_wrongful", f"gates.{g} (wrongful)")]
    cols += [(f"band_{b}", f"composite.bands.{b}") for b in s.composite.bands]
    for name, e in s.systems.items():  # a further points system's columns carry its name
        if e["kind"] == "points":
            cols += [(f"{name}_grade_{g}", f"systems.{name}.grades") for g in e["grades"]]
            cols += [(f"{name}_warnings", f"systems.{name}")]
    return cols


def _check_provided(gname: str, g: Gate, running: dict[str, Any]) -> None:
    """A gate reads only standings that a running system provides."""
    from credsim.conditions import standings_of
    from credsim.modules.registry import kinds

    owners = {name: kind for kind, cls in kinds().items() for name in cls.standings}
    for name in standings_of(g.parsed):
        if name not in running:
            offered = ", ".join(running) or "none"
            raise ValueError(
                f"gates.{gname}.condition: {g.condition!r} reads {name}, which needs "
                f"{owners.get(name, name.partition('.')[0])}.enabled; the systems this "
                f"scenario runs provide: {offered}"
            )


def _check_grade_names(s: Scenario) -> None:
    """Grades named elsewhere are grades of the points system."""
    grades = s.points.grades
    a, t = s.adaptation, s.threats
    for key, grade, used in (
        ("adaptation.prune_grade", a.prune_grade, a.enabled and a.prune_prob > 0),
        ("threats.collusion_target", t.collusion_target, t.colluders_per_million > 0),
    ):
        if used and s.points.enabled and grade not in grades:
            raise ValueError(f"{key}: unknown grade {grade!r}; the points system's grades: "
                             f"{', '.join(grades)}")


def _check_columns(s: Scenario) -> None:
    seen = {col.lower(): what for col, what in FIXED_NAMED_COLUMNS.items()}
    for col, what in named_columns(s):
        if col.lower() in seen:
            raise ValueError(
                f"{what.split(' ')[0]}: its timeseries column {col!r} is already that of "
                f"{seen[col.lower()]}; rename one (column names ignore case)"
            )
        seen[col.lower()] = what


def _known(s: Scenario) -> str:
    return "defined behaviours: " + (", ".join(sorted(s.behaviours)) or "none")


def _check_families(s: Scenario, known: dict[str, Any], running: dict[str, Any]) -> None:
    """Partnering, schooling and inheritance change a population that changes: they need
    demography; the platform ranks by a score; school conditions parse like gates'."""
    for key in ("partnering", "schooling", "inheritance"):
        if getattr(s, key).enabled and not s.demography.enabled:
            raise ValueError(f"{key}.enabled: needs demography.enabled (a population that "
                             "is born and ages)")
    pl = s.partnering.platform
    if pl.enabled and not s.partnering.enabled:
        raise ValueError("partnering.platform.enabled: needs partnering.enabled")
    if pl.enabled and not (s.composite.enabled or s.points.enabled):
        raise ValueError("partnering.platform.enabled: profiles show a score, so it needs "
                         "composite.enabled or points.enabled")
    sc = s.schooling
    for which in ("top", "private"):
        text = getattr(sc, f"{which}_condition")
        if not text:
            continue
        # Checked as a sanction gate's condition (applied at school entry, so any
        # standing will do: a use rate stands for that).
        gate = Gate(domain="education", condition=text, use_rate=1.0)
        try:
            _check_gate("_", gate, known)
            _check_provided("_", gate, running)
        except ValueError as exc:
            raise ValueError(str(exc).replace("gates._.condition", f"schooling.{which}_"
                                              "condition")) from None
        sc._parsed[which] = (gate.parsed, text)
