"""`credsim serve`: the lab in the browser, for people who will not write TOML.

A local web app (FastAPI + uvicorn) over the Python API: presets as cards, the levers
the scenario schema declares, runs in worker processes with their progress streamed day
by day, the summary, the harm audit, a comparison with common random numbers, one
person's story, and the downloads. docs/dashboard.md describes it.
"""
