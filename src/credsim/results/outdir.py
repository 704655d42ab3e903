"""Claiming an output folder and writing it atomically.

A results folder is written under a temporary name beside its target and
renamed to the target only when complete, so a folder under the target name
is always whole. Before anything is simulated, the target is checked (its
name fits the file system, it is not a symbolic link, nothing is there) and
claimed: a claim file created with O_EXCL holds the writer's PID and process
start time, so a second credsim writing to the same target is refused at once
instead of failing after it has simulated. A process killed with SIGKILL leaves
its claim and temporary folder behind; the next credsim that writes into the
same parent folder removes those whose process is gone.

The temporary and claim names are short and fixed in length (a digest of the
target name), so any target name the file system accepts can be used.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

from credsim.errors import InputError

NAME_MAX = 255  # bytes in one path component on Linux, macOS and Windows file systems
_TMP = re.compile(r"^\.credsim-([0-9a-f]{16})-(\d+)\.tmp$")
_CLAIM = re.compile(r"^\.credsim-([0-9a-f]{16})\.claim$")
_LEGACY_TMP = re.compile(r"^\..+\.tmp-(\d+)$")  # left by earlier versions of credsim


class TargetBusy(InputError):
    """Another live credsim process is writing the same target."""


def _digest(name: str) -> str:
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def tmp_path(out: Path) -> Path:
    return out.parent / f".credsim-{_digest(out.name)}-{os.getpid()}.tmp"


def _claim_path(out: Path) -> Path:
    return out.parent / f".credsim-{_digest(out.name)}.claim"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is absent), so
    that a claim of a dead process is not mistaken for one of a new process that was
    given the same PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return not start or _start_time(pid) in ("", start)


def check_target(out: Path) -> None:
    """Refuse, before any work, a target that can never be written."""
    try:
        _check_target(out)
    except OSError as exc:  # e.g. a whole path longer than the system allows
        raise InputError(f"{out}: cannot be used as a results folder ({exc.strerror})"
                         ) from None


def _check_target(out: Path) -> None:
    name = out.name
    if not name or name in (".", ".."):
        raise InputError(f"{out}: not a folder name")
    size = len(os.fsencode(name))
    if size > NAME_MAX:
        raise InputError(f"{out.name[:40]}...: the folder name is {size} bytes long; the "
                         f"file system allows at most {NAME_MAX}")
    if out.is_symlink():
        raise InputError(f"{out}: is a symbolic link; choose another --out or remove it first")
    if out.exists():
        raise InputError(f"{out}: already exists; choose another --out or remove it first")
    for parent in (out.parent, *out.parent.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(f"{out}: {parent} is not a folder")
            break


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove temporary folders and claims that credsim processes which no longer run left
    in `folder`; return what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if (m := _TMP.match(entry.name)) or (m := _LEGACY_TMP.match(entry.name)):
            pid = int(m.groups()[-1])
            ours = m.re is _TMP or _only_credsim_files(path)
            if entry.is_dir(follow_symlinks=False) and ours and not _alive(pid):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        elif _CLAIM.match(entry.name) and _claim_is_stale(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# What a results folder of credsim holds: an old-style temporary folder is removed only if
# it holds nothing else, so that a user's own folder with a similar name is never touched.
_CREDSIM_FILES = {"manifest.json", "timeseries.parquet", "ledger.parquet", "people.parquet",
                  "firms.parquet", "sanctions.parquet", "measures.parquet", "summary.parquet",
                  "status.log", "runs", ".lock"}


def _only_credsim_files(folder: Path) -> bool:
    try:
        return all(n in _CREDSIM_FILES or n.startswith(".") and n.endswith(".tmp")
                   for n in os.listdir(folder))
    except OSError:
        return False


def _read_claim(path: Path) -> tuple[int, str] | None:
    try:
        pid, _, start = path.read_text().strip().partition(" ")
        return int(pid), start
    except (OSError, ValueError):
        return None


def _claim_is_stale(path: Path) -> bool:
    held = _read_claim(path)
    return held is None or not _alive(*held)


def claim(out: Path) -> Path:
    """Check and claim `out`; create and return the temporary folder to write into."""
    check_target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the folder it goes in ({exc.strerror})"
                         ) from None
    remove_leftovers(out.parent)
    claim_file = _claim_path(out)
    me = f"{os.getpid()} {_start_time(os.getpid())}"
    for _ in range(2):  # a second try after removing a stale claim
        try:
            fd = os.open(claim_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = _read_claim(claim_file)
            if held is not None and _alive(*held):
                raise TargetBusy(f"{out}: another credsim process (PID {held[0]}) is writing "
                                 "this folder; choose another --out") from None
            claim_file.unlink(missing_ok=True)
            continue
        except OSError as exc:
            raise InputError(f"{out}: cannot write the results folder ({exc.strerror})"
                             ) from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    else:  # pragma: no cover - a third process took the stale claim in between
        raise TargetBusy(f"{out}: another credsim process is writing this folder")
    tmp = tmp_path(out)
    try:
        if out.exists() or out.is_symlink():  # made by someone else after the check
            raise InputError(f"{out}: already exists; choose another --out or remove it "
                             "first")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        claim_file.unlink(missing_ok=True)
        raise InputError(f"{out}: cannot write the results folder ({exc.strerror})") from None
    except InputError:
        claim_file.unlink(missing_ok=True)
        raise
    return tmp


def _claim_of_tmp(tmp: Path) -> Path | None:
    m = _TMP.match(tmp.name)
    return tmp.parent / f".credsim-{m.group(1)}.claim" if m else None


def commit(tmp: Path, out: Path) -> None:
    """Rename the complete temporary folder to its target and release the claim."""
    try:
        if out.exists() or out.is_symlink():
            # rename() would replace an empty folder made after the claim; refuse instead.
            raise InputError(f"{out}: appeared while the results were written; they are "
                             "not moved there")
        os.rename(tmp, out)
    except OSError as exc:
        raise InputError(f"{out}: cannot move the results into place ({exc.strerror})"
                         ) from None
    finally:
        release(tmp)


def abort(tmp: Path) -> None:
    """Remove the temporary folder and release the claim."""
    shutil.rmtree(tmp, ignore_errors=True)
    release(tmp)


def release(tmp: Path) -> None:
    claim_file = _claim_of_tmp(tmp)
    if claim_file is not None:
        held = _read_claim(claim_file)
        if held is not None and held[0] == os.getpid():
            claim_file.unlink(missing_ok=True)


def write_error(out: Path, exc: OSError) -> InputError:
    """A clear message for a failure to write results (a full disk, a vanished folder)."""
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}.get(
        exc.errno or 0, exc.strerror or str(exc))
    return InputError(f"{out}: cannot write the results ({what}); nothing was left behind")
