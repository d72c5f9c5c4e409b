"""Atomic file and directory replacement (torch-free), shared by checkpoints, bundles and TensorRT engines.

* ``atomic_write_bytes``: write a temporary file beside the target, fsync, rename over it.
* ``staging_dir`` + ``replace_dir``: build a directory in a staging folder beside ``out``, then put it
  at ``out`` so that a crash at ANY point leaves the old or the new directory at ``out``, never
  nothing. On Linux this is one ``renameat2(RENAME_EXCHANGE)`` (ext4, xfs, btrfs, tmpfs, overlayfs
  ...): the two directories trade names in one system call, then the old one (now inside the staging
  folder) is deleted. It keeps ``out`` a plain directory, so ``cp -r``/``scp``/``tar`` of a bundle
  work as before. Where the exchange is unavailable the fallback is two renames with a short window
  in which ``out`` is missing; the old directory then sits in a staging folder whose marker records
  its inode, and ``cleanup_stale`` (run by the next write) moves it back if ``out`` is still missing.
* ``cleanup_stale``: removes only what this code provably made (``ownership``): a file whose name
  is exactly one ``atomic_write_bytes`` produces, or a folder whose name is exactly one
  ``staging_dir`` produces AND that holds a marker naming the same host, boot and PID. It removes one
  only when that writer is gone (same host: another boot, a dead PID, or a PID reused by a younger
  process). Anything else is left alone, with a one-line warning when it looks like a temporary.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from . import ownership
from .ownership import MARKER

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_warned: set[str] = set()
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "armv7l": 382, "ppc64le": 357, "riscv64": 276}


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write, fsync, rename: a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(path.parent, path.name)
    prefix, suffix = ownership.file_affixes(path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
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


def _staging_folder(out: Path) -> Path:
    """A new folder beside ``out`` with our exact name form and a marker naming host, boot and PID.

    A folder that cannot be written is named as the user gave it (not the hidden staging name)."""
    try:
        folder = Path(tempfile.mkdtemp(dir=out.parent, prefix=ownership.dir_prefix(out.name)))
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise OSError(e.errno, f"{e.strerror}: {out.name} is written there (its new copy is built beside it)",
                      str(out.parent)) from None
    ownership.write_marker(folder, out.name)
    return folder


def staging_dir(out: Path) -> Path:
    """A new empty directory ``<staging folder>/NAME`` to build ``out`` in; hand it to ``replace_dir``.

    Cleans what earlier writers of ``out`` left first (``cleanup_stale``)."""
    cleanup_stale(out.parent, out.name)
    new = _staging_folder(out) / out.name
    new.mkdir()
    return new


def discard(new: Path) -> None:
    """Remove a directory from ``staging_dir`` with its staging folder (after a failure)."""
    folder = new.parent
    if ownership.own_live_folder(folder, new.name):
        shutil.rmtree(folder, ignore_errors=True)


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
    """Put the finished directory ``new`` (from ``staging_dir(out)``) at ``out``; see the module docstring."""
    folder = new.parent
    if not ownership.own_live_folder(folder, out.name):
        raise ValueError(f"{new} was not made by staging_dir({out})")
    if not os.path.lexists(out):
        os.rename(new, out)
    elif exchange(new, out):  # ``new`` now holds the old directory
        _fsync_dir(out.parent)
    else:
        old = _staging_folder(out)
        st = os.lstat(out)
        ownership.write_marker(old, out.name, moved_out=(st.st_dev, st.st_ino))  # before the move, durably
        os.rename(out, old / out.name)
        os.rename(new, out)  # a crash before this line leaves out missing: cleanup_stale restores it
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out.parent)
    shutil.rmtree(folder, ignore_errors=True)


def cleanup_stale(parent: Path, name: str) -> list[str]:
    """Remove our temporaries for ``parent/name`` whose writer is gone; restore an orphaned old directory.

    Returns the names removed. Only what ``ownership.judge`` proves ours is touched; a name that looks
    like a temporary but carries no proof is left alone with a one-line warning on stderr.
    """
    done: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return done
    out = parent / name
    for entry in entries:
        verdict = ownership.judge(Path(entry.path), name)
        if verdict.warning and entry.path not in _warned:
            _warned.add(entry.path)  # once per process: a TensorRT build writes many files beside it
            print(f"warning: {verdict.warning}", file=sys.stderr)
        if not verdict.remove:
            continue
        path = Path(entry.path)
        if verdict.moved_out is not None and not os.path.lexists(out):
            orphan = path / name
            try:
                st = os.lstat(orphan)
            except OSError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) != verdict.moved_out:
                print(f"warning: left {path} alone: {name} is missing but what it holds is not what we moved out",
                      file=sys.stderr)
                continue
            if st is not None:
                os.rename(orphan, out)  # the fallback swap crashed between its renames: put the old one back
                _fsync_dir(parent)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(entry.name)
    return done


__all__ = ["MARKER", "atomic_write_bytes", "cleanup_stale", "discard", "exchange", "replace_dir", "staging_dir"]
