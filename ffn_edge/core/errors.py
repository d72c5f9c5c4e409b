"""Error types of the runtime: each carries a one-line message that the CLIs print as is."""

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


def run_cli(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a CLI ``main``: an FFNError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        rc = main()
    except FFNError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:  # Ctrl-C, or a signal a CLI delivers the same way (its exit_code / message)
        print(f"{prog}: {getattr(e, 'message', 'interrupted')}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 130))
    sys.exit(rc or 0)
