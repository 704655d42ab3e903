"""Couples' audit measures (docs/measures.md, "Couples"): how alike partners' scores
are, who never partners, and how alike new couples are in region, group and school."""

from __future__ import annotations

from credsim.audit.measures import RunTables
from credsim.modules import Instance, Measured

NEVER_PARTNERED_AGE = 40  # [years]
YEAR = 365.25


def audit(run: RunTables, part: str, instance: Instance) -> list[Measured]:
    if part != "stratification":
        return []
    return [Measured("couple_score_correlation", couple_score_correlation(run)),
            *_new_couples(run), Measured("never_partnered_share", never_partnered(run))]


def couple_score_correlation(run: RunTables) -> float | None:
    """Pearson's correlation of the two partners' scores across the couples formed in the
    run and alive at the end where both are scored (the couples of the start are paired
    by assumption, not by meeting): the composite score where it runs, else the points
    score."""
    s = run.scenario
    if s.composite.enabled:
        score, scored = "composite", "{t}.composite_participant"
    elif s.points.enabled:
        score, scored = "score", "{t}.score IS NOT NULL"
    else:
        return None
    both = " AND ".join(scored.format(t=t) for t in ("w", "m"))
    rows = run.sql(f"SELECT corr(w.{score}, m.{score}), count(*) FROM people w "
                   f"JOIN people m ON m.id = w.partner WHERE w.sex = 'female' AND w.alive "
                   f"AND m.alive AND w.met_partner != 'never' AND {both}")
    r, n = rows[0]
    return None if n < 3 or r is None else float(r)


def _new_couples(run: RunTables) -> list[Measured]:
    """The shares of the couples formed in the run whose partners share a region, an
    audit group, a school type; and (where the platform runs) that met on it."""
    region, group, school, platform, n = run.sql(
        "SELECT avg((w.region = m.region)::INT), avg((w.\"group\" = m.\"group\")::INT), "
        "avg((w.school = m.school)::INT), avg((l.cause = 'union_platform')::INT), count(*) "
        "FROM ledger l JOIN people w ON w.id = l.id JOIN people m ON m.id = l.value "
        "WHERE l.entity = 'person' AND l.kind = 'union' "
        "AND l.cause IN ('union_offline', 'union_platform')")[0]
    if not n:
        region = group = school = platform = None
    out = [Measured("couple_homophily_share", region, "trait=region"),
           Measured("couple_homophily_share", group, "trait=group"),
           Measured("couple_homophily_share", school, "trait=school")]
    if run.scenario.partnering.platform.enabled:
        out.append(Measured("couple_platform_share", platform))
    return out


def never_partnered(run: RunTables) -> float | None:
    """The share never partnered of those who came of age during the run and are alive
    at the end aged 40 or over (None: nobody is yet)."""
    adult = run.scenario.demography.adult_age
    share, n = run.sql(
        "SELECT avg((NOT ever_partnered)::INT), count(*) FROM people WHERE alive "
        "AND birth_day >= ? AND (? - birth_day) >= ?",
        [-adult * YEAR, run.days, NEVER_PARTNERED_AGE * YEAR])[0]
    return float(share) if n else None
