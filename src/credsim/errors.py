"""Errors shown to users as one clear message and exit code 2."""


class InputError(Exception):
    """Bad user input: a scenario, an override, a path or a run folder."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), for
    one-line errors about a damaged file."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class RunsFailed(Exception):
    """Runs of a compare or sweep failed, or their workers were lost. The message says
    which run, why, and what was kept; the command line prints it and exits with code 1."""


class Stopped(KeyboardInterrupt):
    """A compare or sweep stopped by Ctrl-C or SIGTERM. `message` says what it left
    behind; the command line prints it and exits with 128 + `signum`. A KeyboardInterrupt,
    so that a notebook's interrupt behaves as usual."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum, self.message = signum, message
