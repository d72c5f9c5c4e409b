"""DatasetError: a bad annotation list, frame or video, reported in one line naming the file."""

from ..core.errors import FFNError


class DatasetError(FFNError):
    """An annotation list, class-names file, frame or video cannot be used (message names the file)."""
