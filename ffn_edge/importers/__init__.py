"""Importers: released checkpoints (FFN authors, TSM, PySlowFast, UniFormer, torchvision, timm) -> ffn-edge.

One file per source holds its mapping table (``authors_2d``, ``authors_slowfast``,
``authors_uniformer``, ``tsm``, ``pyslowfast``, ``uniformer``, ``torchvision``, ``timm``);
``loader`` reads files (tensors only), ``place`` applies a table, ``build`` makes the checkpoint,
``cli`` is ``ffn-import``.
"""

from .build import Imported, import_checkpoint
from .loader import ImportRefused, read_source
from .sources import SOURCES, SPECS, find_spec

__all__ = ["SOURCES", "SPECS", "ImportRefused", "Imported", "find_spec", "import_checkpoint", "read_source"]
