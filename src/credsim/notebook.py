"""How credsim's Python objects (credsim.api: Run, Audit, Record, Comparison) show
themselves in a notebook (`_repr_html_`).

Every text taken from a run is escaped; figures are inline SVG, so a saved
notebook shows them offline.
"""

from __future__ import annotations

import html
import io

e = html.escape

STYLE = ("<style>.credsim td,.credsim th{padding:2px 8px;text-align:left}"
         ".credsim td.n{text-align:right;font-variant-numeric:tabular-nums}"
         ".credsim .false{color:#D55E00;font-weight:bold}"
         ".credsim caption{text-align:left;font-weight:bold}</style>")


def _num(v: float | None) -> str:
    from credsim.audit.report import num

    return num(v)


def _table(caption: str, head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'{STYLE}<table class="credsim"><caption>{caption}</caption><thead><tr>{th}'
            f"</tr></thead><tbody>{body}</tbody></table>")


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def run_html(run) -> str:
    m = run.manifest
    caption = (f"credsim run <b>{e(m['scenario_name'])}</b>: {m['people']:,} people, "
               f"{m['days']} days, seed {m['scenario']['run']['seed']}")
    rows = [[e(name), _num(value), e(unit)] for name, value, unit in run.summary()]
    return (_table(caption, ["figure", "value", "unit"], rows, {1})
            + f"<p><small>run folder {e(str(run.path))}</small></p>")


def audit_html(audit) -> str:
    rows = [[e(m.measure), e(m.key), _num(m.value), e(m.unit)] for m in audit.measures]
    return _table(f"harm audit of {e(str(audit.path))} (definitions: docs/measures.md)",
                  ["measure", "key", "value", "unit"], rows, {2})


def record_html(record) -> str:
    r = record.record
    if r.kind == "person":
        head = f"person {r.id} ({e(r.age_band)}, region {r.region}, group {r.group})"
        standing = []
        if r.score is not None:
            standing.append(f"score {r.score} (grade {e(str(r.grade))}; without false "
                            f"records {r.score_true}, {e(str(r.grade_true))})")
        if r.listings is not None:
            standing.append(f"court listings {r.listings} ({r.listings_false} on false "
                            "cases)")
        if r.sanctioned:
            standing.append("sanctioned at the end" + (" — wrongfully" if
                                                       r.sanctioned_wrongful else ""))
    else:
        head = f"firm {e(r.uscc)} ({e(r.sector)}, region {r.region})"
        standing = [f"listed {r.listed}", f"legal representative: person {r.legal_rep}"]
    rows = []
    for x in r.ledger:
        flag = (f'<span class="false">{e(x.record)}</span>'
                if x.record in ("false", "insider", "collusion") else e(x.record))
        ended = "" if x.ended_day is None else f"day {x.ended_day} ({e(str(x.ended_by))})"
        rows.append([str(x.day), e(x.kind), e(x.change), e(x.cause), flag, ended,
                     e(x.note)])
    chart = _score_chart(r) if r.kind == "person" else ""
    table = _table(f"{head}: {len(rows)} ledger entries",
                   ["day", "kind", "change", "cause", "record", "ended", "explanation"],
                   rows, {0})
    return (f"<p><b>{head}</b><br>{'<br>'.join(standing)}</p>" + chart + table)


def _score_chart(r) -> str:
    steps = [(x.day, x.value) for x in r.ledger if x.kind == "score"]
    if not steps or r.initial_score is None:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [0] + [d for d, _ in steps] + [r.run.days]
    values = [r.initial_score] + [v for _, v in steps] + [steps[-1][1]]
    fig, ax = plt.subplots(figsize=(6, 1.8))
    ax.step(days, values, where="post", color="#0072B2")
    for x in r.ledger:
        if x.kind == "score" and x.record in ("false", "insider", "collusion"):
            ax.plot([x.day], [x.value], "o", color="#D55E00")
    ax.set_xlabel("day")
    ax.set_ylabel("score (points)")
    ax.set_title("score over the run (orange dots: false records or insider edits)",
                 fontsize=9)
    return _svg(fig)


HEADLINE = ("sanctioned_person_days_per_million", "wrongful_share", "listed_per_million",
            "new_listings_per_million", "voice_per_1000_person_days",
            "ties_dropped_per_1000")


def comparison_html(cmp) -> str:
    rows_all = cmp.table().to_pylist()
    labels = cmp.labels
    by = {(r["point"], r["measure"], r["key"]): r for r in rows_all}
    head = ["measure", "unit", *[e(lab) for lab in labels],
            *[f"{e(lab)} − {e(labels[0])} (paired)" for lab in labels[1:]]]
    rows, forest = [], []
    for measure in HEADLINE:
        if (0, measure, "") not in by:
            continue
        cells = [e(measure), e(by[(0, measure, "")]["unit"])]
        for p in range(len(labels)):
            r = by.get((p, measure, ""))
            cells.append(_iv(r["mean"], r["ci_low"], r["ci_high"]) if r else "n/a")
        for p in range(1, len(labels)):
            r = by.get((p, measure, ""))
            cells.append(_iv(r["diff_mean"], r["diff_ci_low"], r["diff_ci_high"])
                         if r else "n/a")
            if r and r["diff_mean"] is not None and r["diff_ci_low"] is not None:
                forest.append((f"{measure} ({labels[p]})", r["diff_mean"], r["diff_ci_low"],
                               r["diff_ci_high"]))
        rows.append(cells)
    caption = (f"{e(cmp.kind)}: {cmp.manifest['replicates']} replicates per scenario, "
               "common random numbers; mean [95 % interval]")
    return (_table(caption, head, rows, set(range(2, len(head))))
            + _forest(forest) + f"<p><small>{e(str(cmp.path))}</small></p>")


def _iv(mean, lo, hi) -> str:
    if mean is None:
        return "n/a"
    if lo is None:
        return _num(mean)
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def _forest(items: list[tuple[str, float, float, float]]) -> str:
    """Each paired difference, scaled by the largest half-width so that measures in
    different units share one axis, with zero marked."""
    if not items:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.4 * len(items) + 0.8))
    for i, (_, mean, lo, hi) in enumerate(items):
        scale = max(abs(lo), abs(hi), 1e-300)
        ax.plot([lo / scale, hi / scale], [i, i], color="#0072B2")
        ax.plot([mean / scale], [i], "o", color="#0072B2")
    ax.axvline(0, color="#777777", lw=1, ls="--")
    ax.set_yticks(range(len(items)), [name for name, *_ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("paired difference, scaled by its largest interval end (0 = no change)")
    return _svg(fig)
