"""Error types of the runtime: each carries a one-line message that the CLIs print as is."""

import errno
import os
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


class ClosedError(FFNError, RuntimeError):
    """A session (or its backend) used after ``close()``: the app's order of calls, said in one line."""


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


# Exit status when stdout is closed early (``ffn-run --json | head -1``): what a shell reports for a
# program ended by SIGPIPE (128 + 13), with no message; the reader has what it wanted.
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> NoReturn:
    """Point stdout at /dev/null (so the interpreter's final flush cannot raise again) and exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout has no file descriptor (replaced by a test): nothing to redirect
        pass
    sys.exit(EXIT_BROKEN_PIPE)


def run_cli(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a CLI ``main``: an FFNError, or an output it may not write (permission, read-only, full), becomes
    one line on stderr and exit code 2, never a traceback; stdout closed by its reader ends the run quietly
    with EXIT_BROKEN_PIPE."""
    try:
        rc = main()
        sys.stdout.flush()  # inside the try: a pipe closed after the last print fails here, not at exit
    except BrokenPipeError:
        _stdout_closed()
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
    except KeyboardInterrupt as e:  # Ctrl-C, or a signal a CLI delivers the same way (its exit_code / message)
        print(f"{prog}: {getattr(e, 'message', 'interrupted')}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 130))
    sys.exit(rc or 0)
