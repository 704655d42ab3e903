"""Start the web app: check the options, pick the data folder, say where it listens, open
the browser, and run uvicorn until Ctrl-C."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import socket
import tempfile
import threading
import webbrowser
from pathlib import Path

from credsim.errors import InputError
from credsim.serve.jobs import Limits


def check_limits(limits: Limits) -> None:
    for name, value in vars(limits).items():
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if limits.max_replicates < 2:
        raise InputError("--max-replicates: a comparison needs at least 2 replicates")


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only: localhost or any loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def exposure_warning(host: str) -> str | None:
    """The loud warning for a host other than loopback: what it exposes, and to whom."""
    if is_loopback(host):
        return None
    names = ("this machine's names and addresses" if is_wildcard(host) else host)
    return (f"WARNING: credsim serve is listening on {host}, not only on this machine. "
            "Anyone who can reach this address can start runs on it and use its CPU and "
            "memory (others' jobs stay hidden unless shared); there is no password and no "
            "encryption (plain HTTP), so share links can be read on the way. It answers to "
            f"requests addressed to {names} (and --allow-host names), so that a web page "
            "cannot reach it by DNS rebinding. Use it only on a network you trust, or bind "
            "127.0.0.1 (the default).")


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Host headers the app answers to: loopback names, the bound host (for every
    interface, this machine's names and addresses) and the `--allow-host` names. Never
    any host at all: a site whose name resolves to this machine (DNS rebinding) would
    then drive the lab from a visitor's browser."""
    names = ["127.0.0.1", "localhost", "[::1]"]
    bound = _machine_names() if is_wildcard(host) else [host]
    for name in [*bound, *extra]:
        names.append(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    return tuple(dict.fromkeys(n for n in names if n))


def _machine_names() -> list[str]:
    """This machine's host names and the addresses they resolve to."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    return [*names, *(str(info[4][0]) for info in infos), *_route_address()]


def _route_address() -> list[str]:
    """The address this machine is reached by on its default route (a UDP socket's
    connect sends nothing; 192.0.2.1 is a documentation address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return [probe.getsockname()[0]]
        except OSError:
            return []


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
          say=print, allow_hosts: tuple[str, ...] = ()) -> None:
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
    app = create_app(Config(folder, limits, allowed_hosts(host, allow_hosts)))
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
