"""credsim: a laboratory for simulating and auditing social credit systems."""

__version__ = "0.1.0"
