"""`python -m credsim`, and the `credsim` command's entry point.

Ctrl-C while Python is still importing credsim (before the command line is
read) ends with one line and exit code 130 instead of a traceback.
"""

import sys


def main() -> None:
    try:
        from credsim.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was written\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
