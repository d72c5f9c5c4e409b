"""Error types of the runtime: each carries a one-line message that the CLIs print as is."""

import errno
import re
import sys
from collections.abc import Callable
from typing import NoReturn


class FFNError(Exception):
    """Base class: a user-facing problem with a one-line explanation (no traceback needed)."""


class BundleError(FFNError):
    """A bundle is missing, corrupt, tampered with, or of an unsupported format."""


class SourceError(FFNError):
    """A video source cannot be opened or delivers unusable frames."""


class ConfigError(FFNError):
    """A command-line argument or option value is invalid."""


class InputError(FFNError, ValueError):
    """A ``predict`` input breaks the documented contract (``runtime.inputs``); also a ValueError."""


# OS errors that are the user's environment, not a bug: a read-only or full output location,
# and paths the system cannot even look up (too long, a symlink loop, a file used as a folder)
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG,
                       errno.ELOOP, errno.ENOTDIR}


MAX_TOKEN_CHARS = 200  # a longer word of a message (a value the user gave) is cut, with its length


def short_message(text: str) -> str:
    """``text`` on one line, each run of over MAX_TOKEN_CHARS non-space characters cut: a 100,000-digit
    value a user typed is named by its start and length, not repeated."""
    return re.sub(rf"\S{{{MAX_TOKEN_CHARS + 1},}}",
                  lambda m: f"{m.group(0)[:MAX_TOKEN_CHARS]}... ({len(m.group(0))} characters)",
                  " ".join(text.splitlines()))


def run_cli(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a CLI ``main``: an FFNError, or an output it may not write (permission, read-only, full), becomes
    one line on stderr and exit code 2, never a traceback."""
    try:
        rc = main()
    except FFNError as e:
        print(f"{prog}: error: {short_message(str(e))}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = str(e.filename) if e.filename else ""
        where = f"{where[:80]}... ({len(where)} characters): " if len(where) > 80 else f"{where}: " if where else ""
        print(f"{prog}: error: {where}{e.strerror}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
