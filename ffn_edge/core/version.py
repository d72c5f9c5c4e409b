"""The project's version, in one place: the package metadata (pyproject.toml) reads it from here."""

__version__ = "0.1.0"


def version_line(prog: str) -> str:
    """What ``PROG --version`` prints: the same words from every CLI."""
    return f"{prog} (ffn-edge {__version__})"
