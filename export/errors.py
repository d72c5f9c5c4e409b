"""ExportError: an export that cannot proceed or failed its checks, with a one-line reason."""

from ..core.errors import FFNError


class ExportError(FFNError):
    """Bad exporter input (frames, output directory) or a bundle that failed verification."""
