"""Proof that a temporary beside an output was made by this code, and whether its writer is gone.

A temporary FILE is ours only if its name is exactly what ``atomic.atomic_write_bytes`` produces:
``.NAME.ffn-tmp-PID-TAG-XXXXXXXX.tmp`` (TAG: hashes of the host name and the boot id, XXXXXXXX:
mkstemp's random part) and it is a regular file. A staging FOLDER is ours only if its name is
exactly ``.NAME.ffn-stage-PID-TAG-XXXXXXXX`` AND it holds a marker file (``MARKER``) that names the
same host, boot, PID and target. A user's file or folder that merely looks similar (``.NAME.old-
backup``, ``.NAME.mine.tmp``, an old mtime) never passes. The writer of one of ours is gone when it
ran on this host and the machine has rebooted since, its PID is dead, or that PID now belongs to a
process started after the temporary was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psutil

MARKER = ".ffn-writer.json"
WRITER = "ffn-edge"
_RAND = r"[a-z0-9_]{8}"  # tempfile's random part
_MARKER_MAX = 4096


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return str(int(psutil.boot_time()))


def _h8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def host_tag() -> str:
    """8 hex digits for this host, then 8 for this boot."""
    return _h8(socket.gethostname()) + _h8(_boot_id())


def file_affixes(name: str) -> tuple[str, str]:
    """``mkstemp`` prefix and suffix for a temporary of ``name``."""
    return f".{name}.ffn-tmp-{os.getpid()}-{host_tag()}-", ".tmp"


def dir_prefix(name: str) -> str:
    """``mkdtemp`` prefix for a staging folder of ``name``."""
    return f".{name}.ffn-stage-{os.getpid()}-{host_tag()}-"


def write_marker(folder: Path, name: str, moved_out: tuple[int, int] | None = None) -> None:
    """Write (durably: fsync, rename, fsync) the marker that proves ``folder`` ours."""
    body = {"writer": WRITER, "host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
            "created": time.time(), "target": name, "moved_out": list(moved_out) if moved_out else None}
    tmp = folder / (MARKER + ".new")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER)
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass(frozen=True)
class Verdict:
    """What cleanup may do with one directory entry."""

    remove: bool = False
    moved_out: tuple[int, int] | None = None  # (st_dev, st_ino) of the output this folder holds
    warning: str = ""


KEEP = Verdict()


def _patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    n = re.escape(name)
    return (re.compile(rf"^\.{n}\.ffn-tmp-(\d{{1,10}})-([0-9a-f]{{16}})-{_RAND}\.tmp$"),
            re.compile(rf"^\.{n}\.ffn-stage-(\d{{1,10}})-([0-9a-f]{{16}})-{_RAND}$"),
            re.compile(rf"^\.{n}\.(?:(?:tmp|old)-\d+-{_RAND}|\d+-{_RAND}\.tmp)$"))  # older versions' names


def _read_marker(folder: Path) -> dict | None:
    try:
        st = os.lstat(folder / MARKER)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MARKER_MAX:
            return None
        body = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _writer_gone(pid: int, tag: str, created: float) -> bool | None:
    """True: gone; False: alive (or cannot tell on this host); None: made on another host."""
    ours = host_tag()
    if tag[:8] != ours[:8]:
        return None
    if tag[8:] != ours[8:]:
        return True  # this host has rebooted since
    if pid == os.getpid():
        return False
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OverflowError, ValueError):
        return False
    return started > created + 1.0  # the PID was reused by a younger process


def _marker_proves(folder: Path, name: str, pid: int, tag: str) -> dict | None:
    body = _read_marker(folder)
    if body is None or body.get("writer") != WRITER or body.get("target") != name or body.get("pid") != pid:
        return None
    host, boot = body.get("host"), body.get("boot")
    if not isinstance(host, str) or not isinstance(boot, str) or _h8(host) + _h8(boot) != tag:
        return None
    if not isinstance(body.get("created"), (int, float)):
        return None
    return body


def _unmarked_fresh(folder: Path) -> bool:
    """An empty folder, or one holding only a half-written marker."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    if not entries:
        return True
    e = entries[0]
    return (len(entries) == 1 and e.name == MARKER + ".new" and e.is_file(follow_symlinks=False)
            and e.stat(follow_symlinks=False).st_size <= _MARKER_MAX)


def judge(path: Path, name: str) -> Verdict:
    """Whether cleanup for ``name`` may remove ``path`` (see the module docstring)."""
    as_file, as_folder, legacy = _patterns(name)
    entry = path.name
    try:
        st = os.lstat(path)
    except OSError:
        return KEEP
    if m := as_file.match(entry):
        if not stat.S_ISREG(st.st_mode):
            return Verdict(warning=f"left {path} alone: named like a temporary file of ours but not a plain file")
        gone = _writer_gone(int(m.group(1)), m.group(2), st.st_mtime)
    elif m := as_folder.match(entry):
        body = _marker_proves(path, name, int(m.group(1)), m.group(2)) if stat.S_ISDIR(st.st_mode) else None
        if body is None and stat.S_ISDIR(st.st_mode) and _unmarked_fresh(path):
            # a writer killed between mkdtemp and its marker leaves an empty folder: nothing to lose
            gone = _writer_gone(int(m.group(1)), m.group(2), st.st_mtime)
            return Verdict(remove=bool(gone))
        if body is None:
            return Verdict(warning=f"left {path} alone: named like a staging folder of ours but without our marker")
        gone = _writer_gone(int(m.group(1)), m.group(2), float(body["created"]))
        moved = body.get("moved_out")
        if gone and isinstance(moved, list) and len(moved) == 2 and all(isinstance(v, int) for v in moved):
            return Verdict(remove=True, moved_out=(moved[0], moved[1]))
    elif legacy.match(entry):
        return Verdict(warning=f"left {path} alone: it may be a leftover of an older ffn-edge; delete it if so")
    else:
        return KEEP
    if gone is None:
        return Verdict(warning=f"left {path} alone: made on another host, whose writer may still run")
    return Verdict(remove=True) if gone else KEEP


def own_live_folder(folder: Path, name: str) -> bool:
    """True if ``folder`` is a staging folder of THIS process for ``name`` (safe to delete now)."""
    _, as_folder, _ = _patterns(name)
    m = as_folder.match(folder.name)
    if m is None or int(m.group(1)) != os.getpid() or m.group(2) != host_tag() or folder.is_symlink():
        return False
    return _marker_proves(folder, name, os.getpid(), host_tag()) is not None
