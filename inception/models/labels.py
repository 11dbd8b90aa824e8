"""Label spaces: which output column of a classifier holds which class.

A classifier's classes are the ``class_names`` of its ``ModelInfo``; a model without them whose
output has 1000 (or 1001) columns is taken to be an ImageNet classifier, as keras.applications
does. Leading columns named ``background`` (TF-slim's 1001-class heads) or counted by
``label_offset`` belong to no class. Models, ensembles and data sets are matched by class name,
so an ImageNet model evaluates on a folder of a few synset-named classes, and a model trained on
a folder evaluates on that folder's validation split, without flags.

A labels file (``--class-names``, ``--data-classes``, ``labels_file=``) names classes in label
order, one per line: the line's text up to the first tab is the class name (spaces are part of it),
anything after a tab is a description and ignored (so the package's own
``imagenet_classes.tsv``, ``synset<TAB>lemmas``, is one); ``#`` starts a comment; surrounding
whitespace and blank lines are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from ..preprocessing import imagenet_synsets

BACKGROUND = "background"


def read_labels_file(path: str | os.PathLike, distinct: bool = False) -> list[str]:
    """The class names of a labels file (syntax in the module docstring), in label order.

    Raises ``UsageError`` when the file does not exist, names no class or (with ``distinct``)
    names a class twice."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"labels file {str(path)!r} does not exist.")
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].split("\t", 1)[0].strip()
        if name:
            names.append(name)
    if not names:
        raise UsageError(f"labels file {str(path)!r} lists no classes (one name per line).")
    if distinct and len(set(names)) != len(names):
        raise UsageError(f"labels file {str(path)!r} lists a class more than once.")
    return names


def output_classes(info, width: int) -> list[str] | None:
    """The class id of each output column of a ``width``-wide classifier (``None`` where the
    column is no class), or ``None`` when unknown."""
    names = list(info.class_names) if info.class_names is not None else None
    if names is None and width in (1000, 1001):
        names = imagenet_synsets(width)
    if names is None:
        return None
    if len(names) != width:
        raise ValueError(
            f"the model's record lists {len(names)} class names for {width} outputs; its "
            "record does not belong to it (re-save it with inception.save_model)."
        )
    offset = max(int(info.label_offset), 1 if names and names[0] == BACKGROUND else 0)
    return [None] * offset + names[offset:]


def classes_of(info, width: int) -> list[str] | None:
    """The classes of a classifier (its named columns, in order), or ``None``."""
    names = output_classes(info, width)
    return None if names is None else [n for n in names if n is not None]


def columns(
    info, width: int, space, size: int, what: str, against: str = "the others"
) -> list[int]:
    """For each class of ``space`` (``size`` classes), the output column that scores it.

    ``space`` ``None``: classes are matched by position: the model's columns after its
    ``label_offset`` (or after one extra leading column, slim's background, when it has exactly
    one more than ``size``), whose number must be ``size``.
    """
    names = output_classes(info, width)
    if names is None or space is None:
        offset = int(info.label_offset) or (1 if width == size + 1 else 0)
        if width - offset != size:
            raise ValueError(
                f"{what} has {width - offset} classes but {against} {size}; use a model of "
                f"these {size} classes (--weights RUN/model.keras, or --weights none with "
                f"--classes {size} for a smoke test)."
            )
        return list(range(offset, width))
    index = {n: i for i, n in enumerate(names) if n is not None}
    missing = [c for c in space if c not in index]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise ValueError(
            f"{what} has no class {shown} (it knows {len(index)} classes, e.g. "
            f"{', '.join(list(index)[:3])}); use a model trained on these classes."
        )
    return [index[c] for c in space]
