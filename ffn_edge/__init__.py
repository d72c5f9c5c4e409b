"""ffn-edge: Frame Flexible Network for edge video recognition.

This top-level package must stay importable without torch: the runtime (``ffn_edge.runtime``)
and the frame-count helpers in ``ffn_edge.core.sampling`` are used on devices with no torch.
Import the model side explicitly (``ffn_edge.models``, ``ffn_edge.checkpoint``).
"""

from .core.version import __version__

__all__ = ["__version__"]
