"""The paper's recipe (Szegedy et al. 2016), stated once: ``recipes/paper.json``. Its values are
the defaults of :class:`~inception.training.Recipe` and of the Keras objects that take them
(``PaperRMSProp``, ``SparseSmoothedCrossEntropy``, ``paper_schedule``). Nothing here imports
Keras."""

from __future__ import annotations

import json
from importlib import resources

PAPER: dict = json.loads(
    resources.files("inception.training").joinpath("recipes/paper.json").read_text()
)
