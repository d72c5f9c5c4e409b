"""Error types of the runtime: each carries a one-line message that the CLIs print as is."""


class FFNError(Exception):
    """Base class: a user-facing problem with a one-line explanation (no traceback needed)."""


class BundleError(FFNError):
    """A bundle is missing, corrupt, tampered with, or of an unsupported format."""


class SourceError(FFNError):
    """A video source cannot be opened or delivers unusable frames."""
