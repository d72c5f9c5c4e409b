"""Error types of the runtime: each carries a one-line message that the CLIs print as is."""

import errno
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


# OS errors that are the user's environment, not a bug: a read-only or full output location
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def run_cli(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a CLI ``main``: an FFNError, or an output it may not write (permission, read-only, full), becomes
    one line on stderr and exit code 2, never a traceback."""
    try:
        rc = main()
    except FFNError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where[:300]}{e.strerror}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
