"""Top-k accuracy arithmetic, kept apart from models so it can be checked with known numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def label_ranks(probs, labels) -> np.ndarray:
    """0-based rank of each true label: the number of classes scored strictly higher.

    A label is in the top ``k`` when its rank is below ``k``; ties count in the label's favour
    (as ``tf.math.in_top_k``).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probabilities of shape {probs.shape} do not match {labels.shape[0]} labels."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {probs.shape[1]}); got {labels.min()}..{labels.max()}."
        )
    true = probs[np.arange(labels.size), labels]
    return (probs > true[:, None]).sum(axis=1)


@dataclass
class TopK:
    """Running top-1 / top-5 counts over batches.

    ``classes``: how many classes the scores range over, if known; top-k (k > 1) of ``classes``
    <= k is 100% whatever the model does, so it is reported as ``None`` (not measured).
    """

    ks: tuple[int, ...] = (1, 5)
    count: int = 0
    correct: dict[int, int] = field(default_factory=dict)
    classes: int | None = None

    def measures(self, k: int) -> bool:
        """Whether top-``k`` says anything: ``False`` when ``k > 1`` covers every class."""
        return k == 1 or self.classes is None or self.classes > k

    def update(self, probs, labels) -> None:
        ranks = label_ranks(probs, labels)
        self.count += int(ranks.size)
        for k in self.ks:
            self.correct[k] = self.correct.get(k, 0) + int((ranks < k).sum())

    def accuracy(self, k: int) -> float:
        """Fraction in [0, 1] (0.0 before any update)."""
        return self.correct.get(k, 0) / self.count if self.count else 0.0

    def result(self) -> dict:
        """``{"num_images", "top1", "top5", "top1_error", "top5_error"}`` in percent; ``None``
        for a top-k that covers every class (see ``measures``)."""
        out = {"num_images": self.count}
        for k in self.ks:
            acc = 100.0 * self.accuracy(k)
            measured = self.measures(k)
            out[f"top{k}"] = acc if measured else None
            out[f"top{k}_error"] = (100.0 - acc if self.count else 0.0) if measured else None
        return out
