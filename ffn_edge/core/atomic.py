"""Atomic file and directory replacement (torch-free), shared by checkpoints, bundles and TensorRT engines.

* ``atomic_write_bytes``: write a temporary file beside the target, fsync, rename over it.
* ``replace_dir``: put a finished directory at ``out`` so that a crash at ANY point leaves the old
  or the new directory at ``out``, never nothing. On Linux this is one ``renameat2(RENAME_EXCHANGE)``
  (ext4, xfs, btrfs, tmpfs, overlayfs ...): the two directories trade names in one system call,
  then the old one (now under the temporary name) is deleted. It keeps ``out`` a plain directory,
  so ``cp -r``/``scp``/``tar`` of a bundle work as before (a symlink to a versioned directory would
  be copied as a dangling link by ``cp -r``). Where the exchange is unavailable (another OS, a file
  system without it) the fallback is two renames with a short window in which ``out`` is missing;
  the old directory then sits in ``.NAME.old-PID-*`` and ``cleanup_stale`` (run by the next export)
  moves it back if ``out`` is still missing.
* ``cleanup_stale``: temporaries of ours (``.NAME.tmp-*``, ``.NAME.old-*``, ``.NAME.*.tmp``) left by
  a crash are removed when their writer is gone (the PID in the name is not alive) and they are
  older than STALE_AFTER_S; names of others and fresh ones are never touched.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 600.0  # a temporary younger than this may belong to a writer on another host
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "armv7l": 382, "ppc64le": 357, "riscv64": 276}


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write, fsync, rename: a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def temp_dir_for(out: Path, kind: str = "tmp") -> Path:
    """A new empty directory beside ``out`` named ``.NAME.KIND-PID-*`` (``cleanup_stale`` knows it)."""
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{kind}-{os.getpid()}-"))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    args = (_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        rc = fn(ctypes.c_int(args[0]), ctypes.c_char_p(args[1]), ctypes.c_int(args[2]), ctypes.c_char_p(args[3]),
                ctypes.c_uint(args[4]))
    elif platform.machine() in _SYS_RENAMEAT2:
        rc = libc.syscall(ctypes.c_long(_SYS_RENAMEAT2[platform.machine()]), ctypes.c_int(args[0]),
                          ctypes.c_char_p(args[1]), ctypes.c_int(args[2]), ctypes.c_char_p(args[3]),
                          ctypes.c_uint(args[4]))
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_dir(new: Path, out: Path) -> None:
    """Put the finished directory ``new`` at ``out`` (see the module docstring for the crash guarantee)."""
    if not os.path.lexists(out):
        os.rename(new, out)
    elif exchange(new, out):  # ``new`` now holds the old directory
        _fsync_dir(out.parent)
        shutil.rmtree(new, ignore_errors=True)
        return
    else:
        old = temp_dir_for(out, "old")
        os.rename(out, old / out.name)
        os.rename(new, out)  # a crash before this line leaves out missing: cleanup_stale restores it
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def cleanup_stale(parent: Path, name: str, now: float | None = None) -> list[str]:
    """Remove our stale temporaries for ``parent/name``; restore an orphaned old directory first.

    Returns the names handled. Only ``.NAME.tmp-*``/``.NAME.old-*`` directories and ``.NAME.*.tmp``
    files are considered; each only when the PID in its name is not alive (names without a PID, from
    older versions, count as dead) and it was last modified over STALE_AFTER_S ago.
    """
    now = time.time() if now is None else now
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:(tmp|old)-(?:(\d+)-)?[^/]+|(\d+-)?[^/]*\.tmp)$")
    done = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return done
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None:
            continue
        pid = m.group(2) or (m.group(3) or "")[:-1]
        if pid and _pid_alive(int(pid)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        out = parent / name
        path = Path(entry.path)
        orphan = path / name
        if m.group(1) == "old" and not os.path.lexists(out) and orphan.is_dir() and not orphan.is_symlink():
            os.rename(orphan, out)  # the fallback swap crashed between its renames: put the old one back
        elif now - st.st_mtime < STALE_AFTER_S:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(entry.name)
    return done
