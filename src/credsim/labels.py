"""Plain-words labels and explicit units, declared once, for every timeseries column,
every audit measure and every calibration target.

A label says what a number counts in words a reader outside the field understands; a
unit says what it is counted in, with its denominator ("per million people per year").
A measure also has a `kind`, which says what values it can take and so which interval
suits it when replicate runs are compared:

- `share`: a proportion in [0, 1];
- `flag`: 0 or 1;
- `verdict`: a coded result (the four-fifths verdicts: 0, 1 or 2, see docs/measures.md);
- `count`, `rate`: non-negative (a count of things; a count per person, per day, ...);
- `ratio`: a non-negative ratio of two rates;
- `score`: a value on a scale (points, stars, a Gini coefficient);
- `correlation`: in [-1, 1].

Columns and keys built from names in the scenario (`gate_<name>`, `band_<name>`,
`sanctioned_group<G>`, keys such as `gate=flights` or `group=1`) get labels made from
those names. Audit groups are abstract groups of the synthetic population, with the
shares set by `population.group_shares` (in the presets, group 1 is a minority of 15 %).

"Per million" means one thing everywhere: flows are per million people per year
(counts over the run × 365 / days), stocks per million people (on an average day, or on
the last day, as the label says), and person-days per million person-days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from credsim.scenario.model import DOMAINS, GRADES

KINDS = ("share", "flag", "verdict", "count", "rate", "ratio", "score", "correlation")

PER_M_PEOPLE = "per million people"
PER_M_YEAR = "per million people per year"
PER_M_PERSON_DAYS = "per million person-days"
PEOPLE = "people"


@dataclass(frozen=True)
class Label:
    label: str  # plain words: what the number counts
    unit: str  # what it is counted in, with its denominator
    kind: str  # one of KINDS


def _l(label: str, unit: str, kind: str) -> Label:
    assert kind in KINDS, kind
    return Label(label, unit, kind)


# Timeseries columns with fixed names ------------------------------------------------------
COLUMNS: dict[str, Label] = {
    "day": _l("day of the run, from 0", "days", "count"),
    **{f"grade_{g}": _l(f"adults holding grade {g}", PEOPLE, "count") for g in GRADES},
    "warnings": _l("deductions turned into warnings on a given day", "warnings", "count"),
    "composite_participants": _l("people taking part in the composite score", PEOPLE,
                                 "count"),
    "band_below_lowest": _l("participants scored below the lowest band", PEOPLE, "count"),
    "rating_mean": _l("mean peer rating of adults", "stars", "score"),
    "ratings_given": _l("peer ratings given on a given day", "ratings", "count"),
    "firms_blacklisted": _l("firms on the blacklist", "firms", "count"),
    "firms_red_listed": _l("firms on the red list", "firms", "count"),
    "firm_items_shown": _l("firm record items on display", "items", "count"),
    "firm_items_new": _l("firm record items put on display on a given day", "items", "count"),
    "listed": _l("people on the court list", PEOPLE, "count"),
    "listed_firms": _l("firms on the court list", "firms", "count"),
    "open_cases": _l("court enforcement cases still open", "cases", "count"),
    "new_listings": _l("people's own cases put on the court list on a given day", "cases",
                       "count"),
    "new_firm_listings": _l("firms' cases put on the court list on a given day", "cases",
                            "count"),
    "payments": _l("court cases paid on a given day", "cases", "count"),
    "sanctioned": _l("people sanctioned on a given day", PEOPLE, "count"),
    "sanctioned_wrongful": _l("people sanctioned on a given day on a false record",
                              PEOPLE, "count"),
    "insider_edits": _l("records fabricated by insiders on a given day", "records", "count"),
    "informant_reports": _l("malicious informants' reports on a given day", "reports",
                            "count"),
    "audit_catches": _l("insiders' edits caught by audit and reversed on a given day",
                        "records", "count"),
    "collusion_certificates": _l("good deeds certified by colluders on a given day",
                                 "certificates", "count"),
    "records_reviewed": _l("records checked by human review on a given day", "records",
                           "count"),
    "records_struck": _l("false records struck out on a given day", "records", "count"),
    "marks_expired": _l("points deductions expired on a given day", "deductions", "count"),
    "people_alive": _l("people alive at the end of a given day", PEOPLE, "count"),
    "adults_alive": _l("adults (and elders) alive at the end of a given day", PEOPLE,
                       "count"),
    "births": _l("people born on a given day", PEOPLE, "count"),
    "deaths": _l("people who died on a given day", PEOPLE, "count"),
    "came_of_age": _l("children who came of age on a given day", PEOPLE, "count"),
    "gini_income": _l("inequality of living adults' incomes (Gini), taken once a year",
                      "Gini coefficient", "score"),
    "gini_savings": _l("inequality of living adults' savings (Gini), taken once a year",
                       "Gini coefficient", "score"),
    # families (credsim.families)
    "couples": _l("couples at the end of a given day", "couples", "count"),
    "couples_formed": _l("couples formed on a given day", "couples", "count"),
    "couples_formed_platform": _l("couples formed on a given day who met on the dating "
                                  "platform", "couples", "count"),
    "couples_split": _l("couples who split on a given day", "couples", "count"),
    "single_women": _l("single adult women at the end of a given day", PEOPLE, "count"),
    "single_men": _l("single adult men at the end of a given day", PEOPLE, "count"),
    "school_entries": _l("children who entered school on a given day", PEOPLE, "count"),
    "school_entries_top": _l("children who entered a top school on a given day", PEOPLE,
                             "count"),
    "school_entries_private": _l("children who entered a private school on a given day",
                                 PEOPLE, "count"),
    "school_refused_top": _l("children refused a top-school place because of a parent's "
                             "standing on a given day", PEOPLE, "count"),
    "school_refused_private": _l("children refused a private-school place because of a "
                                 "parent's standing on a given day", PEOPLE, "count"),
    "events_true": _l("things people and firms actually did on a given day, recorded or not",
                      "events", "count"),
    "events_observed": _l("true events recorded on a given day", "events", "count"),
    "records_false": _l("false records created on a given day (mix-ups)", "records",
                        "count"),
    "voice_events": _l("times people spoke out (criticism, \"rumours\") on a given day",
                       "events", "count"),
    "ties_dropped": _l("social ties dropped on a given day", "ties", "count"),
}

_GROUP_COL = re.compile(r"sanctioned(_wrongful)?_group(\d+)")
_EVENTS_COL = re.compile(r"events_(" + "|".join(DOMAINS) + ")")


# A note for any table that shows figures by audit group.
GROUPS_NOTE = ("Audit groups are abstract groups of the synthetic population (no real "
               "ethnic or other group), with the shares set by population.group_shares.")


def group_label(g: int | str) -> str:
    return f"audit group {g}"


def column_label(name: str, gates: list[str] | tuple[str, ...] | None = None) -> Label:
    """The label of timeseries column `name`. `gates`, the scenario's gate names, tells a
    gate named `x_wrongful` from the wrongful column of a gate `x`; without it a name
    ending in `_wrongful` is read as the latter."""
    if name in COLUMNS:
        return COLUMNS[name]
    if m := _GROUP_COL.fullmatch(name):
        what = "on a false record " if m.group(1) else ""
        return _l(f"people sanctioned on a given day {what}in {group_label(m.group(2))}",
                  PEOPLE, "count")
    if m := _EVENTS_COL.fullmatch(name):
        return _l(f"true events in the {m.group(1)} domain on a given day", "events", "count")
    if name.startswith("gate_"):
        gate = name[len("gate_"):]
        wrongful = gate.endswith("_wrongful") and (gates is None or gate not in gates)
        if wrongful:
            gate = gate[: -len("_wrongful")]
            return _l(f"gate applied on a false record on a given day: {gate}",
                      "applications", "count")
        return _l(f"gate applied (sanction or perk) on a given day: {gate}", "applications",
                  "count")
    if name.startswith("band_"):
        return _l(f"participants in composite band {name[len('band_'):]}", PEOPLE, "count")
    found = _module_column(name)
    if found is None:
        raise KeyError(f"no label for the timeseries column {name!r}")
    return found


# Columns and measures that modules declare (systems from installed packages) ---------------
def _module_measure(measure: str) -> Label | None:
    """The label a module declares for its audit measure `measure`, if one does."""
    from credsim.modules.registry import module_measures

    found = module_measures().get(measure)
    if found is None:
        return None
    m = next(m for m in found[1].audit_measures if m.name == measure)
    return Label(m.label, m.unit, m.kind)


def _module_column(name: str) -> Label | None:
    """The label of a module's daily result `name` (a `<x>` in a declared name stands
    for any name); results of credsim's own modules are labelled above."""
    from credsim.modules.registry import plugin_kinds

    for cls in plugin_kinds().values():
        for r in cls.results:
            if r.label and r.matches(name):
                return Label(r.label, r.unit, r.kind if r.kind in KINDS else "count")
    return None


# Measures ----------------------------------------------------------------------------------
SHARE_SANCTIONED_DAYS = "share of sanctioned person-days"
VS_BASELINE = "ratio to the same society without the system"
VERDICT_UNIT = "0 = not flagged, 1 = inconclusive, 2 = flagged"

MEASURES: dict[str, Label] = {
    # distributions
    "grade_share": _l("share of adults holding a grade on the last day", "share of adults",
                      "share"),
    "score_mean": _l("mean points score of adults at the end", "points", "score"),
    "score_sd": _l("spread (standard deviation) of adults' points scores", "points", "score"),
    "composite_participation": _l("share of adults taking part in the composite score",
                                  "share of adults", "share"),
    "band_share": _l("share of participants in a composite band on the last day",
                     "share of participants", "share"),
    "composite_mean": _l("mean composite score of participants at the end", "points",
                         "score"),
    "composite_sd": _l("spread (standard deviation) of composite scores", "points", "score"),
    "rating_mean": _l("mean peer rating of adults at the end", "stars", "score"),
    "rating_sd": _l("spread (standard deviation) of peer ratings", "stars", "score"),
    # listings and sanctions
    "listed_per_million": _l("people on the court list on an average day", PER_M_PEOPLE,
                             "rate"),
    "listed_per_million_last_day": _l("people on the court list on the last day",
                                      PER_M_PEOPLE, "rate"),
    "new_listings_per_million": _l("people's own cases put on the court list", PER_M_YEAR,
                                   "rate"),
    "firms_blacklisted": _l("firms on the blacklist on an average day", "firms", "count"),
    "sanctions_per_million": _l("sanctions applied", PER_M_YEAR, "rate"),
    "perks_per_million": _l("perks granted", PER_M_YEAR, "rate"),
    "sanctioned_person_days_per_million": _l(
        "sanctioned person-days per million person-days", PER_M_PERSON_DAYS, "rate"),
    # wrongful sanctions and disparate impact
    "wrongful_person_days_per_million": _l(
        "wrongful sanctioned person-days per million person-days", PER_M_PERSON_DAYS, "rate"),
    "wrongful_share": _l("share of sanctioned person-days resting on a false record",
                         SHARE_SANCTIONED_DAYS, "share"),
    "sanction_rate": _l("share of adult person-days spent sanctioned",
                        "share of adult person-days", "share"),
    "sanction_impact_ratio": _l("sanction impact ratio (least-burdened group's rate over "
                                "this group's; below 0.8 is adverse impact)",
                                "ratio to the least-burdened group", "ratio"),
    "sanction_impact_ratio_low": _l("sanction impact ratio, lower end of its 95 % interval",
                                    "ratio to the least-burdened group", "ratio"),
    "sanction_impact_ratio_high": _l("sanction impact ratio, upper end of its 95 % interval",
                                     "ratio to the least-burdened group", "ratio"),
    "sanction_impact_n": _l("adults counted for the sanction impact ratio", PEOPLE, "count"),
    "sanction_four_fifths_flag": _l("sanction impact ratio below 0.8 (point value)",
                                    "1 = flagged", "flag"),
    "sanction_four_fifths": _l("four-fifths rule on sanctions, with the interval",
                               VERDICT_UNIT, "verdict"),
    "listing_rate": _l("entries onto the court list per adult per year",
                       "entries per adult per year", "rate"),
    "listing_impact_ratio": _l("listing impact ratio (least-burdened group's rate over "
                               "this group's; below 0.8 is adverse impact)",
                               "ratio to the least-burdened group", "ratio"),
    "listing_impact_ratio_low": _l("listing impact ratio, lower end of its 95 % interval",
                                   "ratio to the least-burdened group", "ratio"),
    "listing_impact_ratio_high": _l("listing impact ratio, upper end of its 95 % interval",
                                    "ratio to the least-burdened group", "ratio"),
    "listing_impact_n": _l("adults counted for the listing impact ratio", PEOPLE, "count"),
    "listing_four_fifths_flag": _l("listing impact ratio below 0.8 (point value)",
                                   "1 = flagged", "flag"),
    "listing_four_fifths": _l("four-fifths rule on listings, with the interval",
                              VERDICT_UNIT, "verdict"),
    # spirals
    "grade_transition": _l("share of adults ending at a grade", "share of adults", "share"),
    "fall_to_c_within_year": _l("share of adults who fell to grade C or worse within a year",
                                "share of adults", "share"),
    "wrongful_marks": _l("points deductions resting on a false record or an insider's edit",
                         "deductions", "count"),
    "recovered_share": _l("share of those deductions the person's score recovered from",
                          "share of wrongful deductions", "share"),
    "recovery_days_median": _l("median days to recover from a wrongful deduction",
                               "days (recovered deductions only)", "count"),
    # stratification
    "gini_score": _l("inequality of points scores (Gini)", "Gini coefficient", "score"),
    "gini_composite": _l("inequality of composite scores (Gini)", "Gini coefficient", "score"),
    "gini_savings": _l("inequality of savings (Gini)", "Gini coefficient", "score"),
    "private_school_lost_share": _l("share of children who lost a private-school place",
                                    "share of children who held a private place", "share"),
    # chilling
    "voice_per_1000_person_days": _l("times people spoke out per 1000 person-days",
                                     "per 1000 person-days", "rate"),
    "voice_vs_baseline": _l("speaking out, relative to the same society without the system",
                            VS_BASELINE, "ratio"),
    "ties_dropped_per_1000": _l("social ties dropped over the run per 1000 people",
                                "per 1000 people over the run", "rate"),
    "isolated_critics_share": _l("share of critics with no tie outside the family",
                                 "share of critics", "share"),
    "score_assortativity": _l("how alike the scores of people tied to each other are",
                              "correlation across ties", "correlation"),
    # manipulation
    "insider_edits": _l("insiders' fabricated records that took effect", "edits per year",
                        "rate"),
    "audit_catch_share": _l("share of insiders' edits caught by audit", "share of edits",
                            "share"),
    "insider_reach_points": _l("net points insiders' edits took from each targeted person",
                               "points per targeted person", "score"),
    # EU AI Act Art. 5(1)(c)
    "cross_context_share": _l("share of sanctions applied outside the domain of the record "
                              "behind them", "share of sanction applications", "share"),
    "disproportionate_share": _l("share of sanctions costing more than the proportionality "
                                 "bound (days of income)", "share of sanction applications",
                                 "share"),
    # claimed benefits
    "true_event_rate": _l("things adults actually did per 1000 adult person-days",
                          "true events per 1000 adult person-days", "rate"),
    "true_events_vs_baseline": _l("true events relative to the same society without the "
                                  "system (below 1: the system deters)", VS_BASELINE, "ratio"),
    # generations (with demography)
    "rank_rank_slope_income": _l("how much a child's adult income rank follows the parents' "
                                 "(rank-rank slope; 0: not at all, 1: fully)",
                                 "slope of percentile ranks", "score"),
    "rank_rank_slope_score": _l("how much a child's adult score rank follows the parents' "
                                "(rank-rank slope; 0: not at all, 1: fully)",
                                "slope of percentile ranks", "score"),
    "rank_rank_n": _l("grown children counted for the rank-rank slope", PEOPLE, "count"),
    "class_persistence": _l("share of grown children holding a grade, by their parents' "
                            "worst grade when they came of age",
                            "share of grown children of parents of that grade", "share"),
    "class_persistence_n": _l("grown children whose parents held a grade when they came of "
                              "age", PEOPLE, "count"),
    "top_school_share_by_parents_grade": _l(
        "share of children in a top school, by their parents' worst grade",
        "share of children of parents of that grade", "share"),
    "voice_by_cohort": _l("mean voice (inclination to speak out) of the living, by birth "
                          "cohort", "voice trait (0 to 1)", "score"),
    "voice_by_cohort_vs_baseline": _l("mean voice of a birth cohort, relative to the same "
                                      "society without the system", VS_BASELINE, "ratio"),
    "cohort_people": _l("people of a birth cohort alive at the end", PEOPLE, "count"),
    "gini_income": _l("inequality of incomes of living adults (Gini)", "Gini coefficient",
                      "score"),
    # couples (partnering: credsim.families)
    "couple_score_correlation": _l(
        "how alike partners' scores are: the correlation of the two scores across the "
        "couples formed in the run (composite score, else points score)",
        "correlation across couples",
        "correlation"),
    "couple_homophily_share": _l("share of the couples formed in the run whose partners "
                                 "share a trait (region, audit group, school type)",
                                 "share of new couples", "share"),
    "couple_platform_share": _l("share of the couples formed in the run who met on the "
                                "dating platform", "share of new couples", "share"),
    "never_partnered_share": _l("share never partnered of those who came of age in the run "
                                "and are 40 or over at the end", "share of people aged 40+",
                                "share"),
    # headline figures of `credsim summary` only
    "false_records_per_million_person_days": _l(
        "false records created (mix-ups) per million person-days", PER_M_PERSON_DAYS, "rate"),
}


def key_phrase(key: str) -> str:
    """Plain words for a measure's key ('group=1' -> 'audit group 1'; a further system's
    'province:grade=Fair' -> 'grade Fair (province)')."""
    if not key:
        return ""
    system, sep, own = key.partition(":")
    if sep:  # a further system's measure: 'province:grade=Fair'
        return f"{key_phrase(own)} ({system})"
    if "->" in key:
        start, end = key.split("->", 1)
        return f"from grade {start} to grade {end}"
    if ";" in key:  # several parts: 'parents=C;child=A'
        return "; ".join(key_phrase(k) for k in key.split(";"))
    what, _, name = key.partition("=")
    return {
        "group": group_label(name),
        "gate": name,
        "grade": f"grade {name}",
        "band": f"band {name}",
        "domain": f"{name} domain",
        "parent": f"first parent's standing {name}",
        "system": f"{name} score",
        "parents": f"parents' worst grade {name}",
        "child": f"own grade {name}",
        "cohort": f"born in years {name} to {_int_or(name, 4)} of the run (0: its first)",
        "at": f"at the {name}",
        "of": f"of {name}",
        "trait": f"same {name}",
    }.get(what, key)


def _int_or(name: str, add: int) -> str:
    """`name` + `add` if `name` is a whole number, else `name`."""
    try:
        return str(int(name) + add)
    except ValueError:
        return name


def measure_label(measure: str, key: str = "") -> Label:
    """The label of a measure, for one key: the measure's label followed by the key in
    words ("sanctions applied: flights", "... : audit group 1")."""
    base = MEASURES.get(measure) or _module_measure(measure)
    if base is None:
        raise KeyError(f"no label for the measure {measure!r}")
    phrase = key_phrase(key)
    return Label(f"{base.label}: {phrase}" if phrase else base.label, base.unit, base.kind)


# Calibration targets -------------------------------------------------------------------------
PER_LISTED_YEAR = "per listed person-year"

TARGETS: dict[str, Label] = {
    "new_listings_2024": _l("people put on the court list (2024)", PER_M_YEAR, "rate"),
    "new_people_2019": _l("people put on the court list (March 2019, a year's worth)",
                          PER_M_YEAR, "rate"),
    "new_organisations_2019": _l("organisations put on the court list (March 2019, a "
                                 "year's worth)", PER_M_YEAR, "rate"),
    "flights_per_listed_2018": _l("flights refused per listed person (2018)",
                                  PER_LISTED_YEAR, "rate"),
    "rail_per_listed_2018": _l("high-speed rail tickets refused per listed person (2018)",
                               PER_LISTED_YEAR, "rate"),
    "listed_cumulative_2018": _l("people ever put on the court list (end 2018)",
                                 PER_M_PEOPLE, "rate"),
    "flights_per_capita_2018": _l("flights refused (2018)", PER_M_YEAR, "rate"),
    "rail_per_capita_2018": _l("high-speed rail tickets refused (2018)", PER_M_YEAR, "rate"),
    "restored_2024": _l("people taken off the court list (2024)", PER_M_YEAR, "rate"),
    "fulfilled_2018": _l("court obligations paid (2018)", PER_M_YEAR, "rate"),
}


def target_label(key: str) -> Label:
    try:
        return TARGETS[key]
    except KeyError:
        raise KeyError(f"no label for the calibration target {key!r}") from None
