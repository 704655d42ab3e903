"""Errors shown to users as one clear message and exit code 2."""


class InputError(Exception):
    """Bad user input: a scenario, an override, a path or a run folder."""
