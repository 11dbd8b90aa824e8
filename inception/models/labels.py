"""Label spaces: which output column of a classifier holds which class.

A classifier's classes are the ``class_names`` of its ``ModelInfo``; a model without them whose
output has 1000 (or 1001) columns is taken to be an ImageNet classifier, as keras.applications
does. Leading columns named ``background`` (TF-slim's 1001-class heads) or counted by
``label_offset`` belong to no class. Models, ensembles and data sets are matched by class name,
so an ImageNet model evaluates on a folder of a few synset-named classes, and a model trained on
a folder evaluates on that folder's validation split, without flags.
"""

from __future__ import annotations

from ..preprocessing import imagenet_synsets

BACKGROUND = "background"


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
