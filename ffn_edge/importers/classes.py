"""Class names for an imported checkpoint: a file (one name per line, in label order) or a dataset name.

Shipped (public lists): ``kinetics400`` (alphabetical, the order of Kinetics' official label map)
and ``kinetics400-pyslowfast`` (the label order of PySlowFast's / UniFormer's Kinetics loaders,
as in the FFN authors' ``kinetics_400_categroies.txt``). Something-Something V1/V2 names come
with the dataset (its ``category.txt`` / ``labels.json`` under the dataset's licence): pass that file.
A line ``name<TAB>index`` (the authors' Kinetics list format) counts as ``name``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..core import validate as V
from ..core.errors import ConfigError
from ..core.files import read_regular

SHIPPED = {"kinetics400": "kinetics400.txt", "kinetics400-pyslowfast": "kinetics400-pyslowfast.txt"}
SUPPLY = {  # dataset names whose list the user supplies
    "ssv1": "Something-Something V1's category.txt (174 names, in label order)",
    "ssv2": "Something-Something V2's category list (174 names in label order, e.g. TSM's category.txt)",
}
MAX_CLASS_FILE = 1 << 22


def load_class_names(spec: str, count: int | None = None) -> list[str]:
    """Names from a dataset name or a file; ``count`` (the head's classes) checked when given."""
    if spec in SHIPPED:
        text = resources.files(__package__).joinpath("classes", SHIPPED[spec]).read_text(encoding="utf-8")
    elif spec in SUPPLY:
        raise ConfigError(f"{spec} class names are not shipped (they come with the dataset): "
                          f"pass --classes FILE with {SUPPLY[spec]}")
    else:
        path = Path(spec)
        raw = read_regular(path, MAX_CLASS_FILE, ConfigError, follow_symlinks=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: class-name file is not UTF-8 text") from None
    names = [line.split("\t", 1)[0].strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if count is not None and len(names) != count:
        raise ConfigError(f"--classes {spec}: {len(names)} names, the checkpoint's head has {count} classes")
    try:
        return V.check_class_names(names, len(names))
    except ValueError as e:
        raise ConfigError(f"--classes {spec}: {e}") from None
