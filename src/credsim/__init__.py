"""credsim: a laboratory for simulating and auditing social credit systems.

    import credsim
    run = credsim.run("rongcheng", people=20_000)
    run.audit().table()

The names below are imported on first use, so that `import credsim` (and the
command line) start quickly.
"""

from credsim.errors import InputError, RunsFailed, Stopped

__version__ = "0.1.0"

_API = ("Audit", "Calibration", "Comparison", "Record", "Run", "compare", "load", "open",
        "plan", "presets", "run", "sweep")
__all__ = ["InputError", "RunsFailed", "Scenario", "Stopped", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from credsim import api

        return getattr(api, name)
    if name == "Scenario":
        from credsim.scenario.model import Scenario

        return Scenario
    raise AttributeError(f"module 'credsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
