"""Start the web app: check the options, pick the data folder, say where it listens, open
the browser, and run uvicorn until Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
import threading
import webbrowser
from pathlib import Path

from credsim.errors import InputError
from credsim.serve.jobs import Limits

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_limits(limits: Limits) -> None:
    for name, value in vars(limits).items():
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if limits.max_replicates < 2:
        raise InputError("--max-replicates: a comparison needs at least 2 replicates")


def exposure_warning(host: str) -> str | None:
    """The loud warning for a host other than loopback."""
    if host in LOOPBACK:
        return None
    return (f"WARNING: credsim serve is listening on {host}, not only on this machine. "
            "Anyone who can reach this address can start runs on it and use its CPU and "
            "memory; there is no password. Use it only on a network you trust, or bind "
            "127.0.0.1 (the default).")


def allowed_hosts(host: str) -> tuple[str, ...]:
    """Host headers the app answers to: loopback names, and the bound host. Binding every
    interface (0.0.0.0, ::) accepts any host name, as the warning says."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return tuple(dict.fromkeys(("127.0.0.1", "localhost", "[::1]",
                                f"[{host}]" if ":" in host else host)))


def _check_port(host: str, port: int) -> None:
    """Refuse, with one message, a port that is taken or an address this machine lacks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"--host {host} --port {port}: cannot listen there "
                             f"({exc.strerror or exc})") from None


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def serve(host: str, port: int, open_browser: bool, data: Path | None, limits: Limits,
          say=print) -> None:
    import uvicorn

    from credsim.serve.app import Config, create_app

    check_limits(limits)
    _check_port(host, port)  # before any folder is made: a failed start leaves nothing
    owned = None
    if data is None:
        owned = Path(tempfile.mkdtemp(prefix="credsim-serve-"))
        folder = owned
    else:
        folder = data
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--data {data}: cannot create the folder ({exc.strerror})"
                             ) from None
    warning = exposure_warning(host)
    if warning:
        say(warning, loud=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"
    say(f"credsim serve: {url} (jobs in {folder}; Ctrl-C stops)")
    app = create_app(Config(folder, limits, allowed_hosts(host)))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    # uvicorn shuts down on SIGTERM, then raises the signal again: as an exit (rather than
    # the default, which ends the process at once) it lets the temporary folder go.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
