# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # credsim from Python: a first hour
#
# This tutorial runs a social credit system on a synthetic society, audits what it
# did against the same society without it, follows one person who was wrongfully
# sanctioned, measures what a safeguard changes, and draws a plot. It is a
# Jupytext "percent" script: open it in Jupyter (with jupytext) as a notebook, or
# run it as it is with `python docs/tutorial.py`. The test suite runs it, so what it
# shows stays true.
#
# Every person here is synthetic: credsim never reads records about real people.

# %%
import credsim

for name, description in credsim.presets():
    print(f"{name:16} {description[:70]}")

# %% [markdown]
# ## 1. Run a system
#
# `credsim.load` gives a validated scenario; overrides take Python values. We make
# false court records five times as likely for audit group 1 (an abstract minority:
# 15 % of people, by `population.group_shares`), so that the audit has something to
# find. `credsim.run` runs it into a temporary folder that the `Run` owns.

# %%
overrides = {"channels.court.false_rate": 2e-5,
             "channels.court.false_rate_by_group": [1.0, 5.0]}
scenario = credsim.load("rongcheng", set=overrides, people=30_000, days=365, seed=7)
run = credsim.run(scenario)
baseline = credsim.run("baseline", set=overrides, people=30_000, days=365, seed=7)
run

# %% [markdown]
# Every table of the run folder is a `pyarrow.Table` (`.to_pandas()` works where
# pandas is installed). SQL goes through DuckDB, confined to the run's tables.

# %%
people = run.table("people")
print(people.num_rows, "people;", people.column_names[:8], "...")
by_group = run.sql("""
    select "group", count(*) filter (where sanctioned) as sanctioned,
           count(*) filter (where sanctioned_wrongful) as wrongful
    from people group by 1 order by 1""")
print(by_group.to_pylist())

# %% [markdown]
# ## 2. Audit it against the baseline
#
# The harm audit computes every measure of `docs/measures.md`; the baseline adds the
# measures relative to the same society without the system (chilling of voice,
# whether the claimed benefits appear).

# %%
audit = run.audit(baseline=baseline)
for measure in ("sanctioned_person_days_per_million", "wrongful_share",
                "voice_vs_baseline"):
    print(f"{measure:40} {audit.value(measure)}")
audit

# %% [markdown]
# ## 3. One person's record
#
# Who was sanctioned on a record that was not theirs? The lookup shows the record
# as a credit portal would, and the explanation no real portal gives.

# %%
wrongful = run.sql("select id from people where sanctioned_wrongful order by id limit 1")
person = wrongful.column("id")[0].as_py()
record = run.lookup(person)
print(record)

# %%
record.entries.select(["day", "kind", "cause", "record", "change"]).to_pylist()

# %% [markdown]
# ## 4. What would a safeguard change?
#
# Ten replicates of the system with and without human review of deductions, on
# common random numbers: replicate r of both runs with seed 7 + r, so the two differ
# only because of the safeguard. The paired difference comes with a 95 % interval.

# %%
reviewed = credsim.load(scenario, set={"safeguards.review_capacity": 400,
                                       "safeguards.notice_days": 30})
reviewed.name = "reviewed"
comparison = credsim.compare([scenario, reviewed], replicates=10, people=10_000)
rows = [r for r in comparison.table().to_pylist()
        if r["measure"] == "sanctioned_person_days_per_million" and r["key"] == ""]
for r in rows:
    print(r["scenario"], round(r["mean"], 1), (round(r["ci_low"], 1), round(r["ci_high"], 1)))
comparison

# %% [markdown]
# ## 5. A plot
#
# The timeseries table holds one row a day. Here: people on the court list, and
# people sanctioned, over the year.

# %%
import matplotlib.pyplot as plt  # noqa: E402

ts = run.table("timeseries").to_pydict()
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(ts["day"], ts["listed"], label="on the court list")
ax.plot(ts["day"], ts["sanctioned"], label="sanctioned (any gate)")
ax.set_xlabel("day")
ax.set_ylabel("people")
ax.legend()
fig.savefig("tutorial-listed.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# To keep a run, `run.save("runs/rc")`; `credsim.open("runs/rc")` opens it again, and
# `run.report("rc.html")` writes the HTML report. `docs/api.md` lists everything.
