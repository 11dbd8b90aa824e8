"""Fixtures shared by the test modules (helpers without fixtures: ``helpers.py``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ilsvrc import imagenet2012_manual  # noqa: E402, F401  (fixtures made available to all tests)
from weights_fixtures import slim_checkpoints, timm_files  # noqa: E402, F401

# Files that take longest on the 2-core CI machine (measured with --durations), started first:
# `make test` hands whole files to two workers in collection order, so the long ones must not be
# left for the end. Within a file the order is unchanged.
LONGEST_FIRST = (
    "test_docs.py",
    "test_train_distributed.py",
    "test_export.py",
    "test_optimize.py",
    "test_finetune.py",
    "test_models.py",
    "test_serialization_backends.py",
    "test_export_formats.py",
    "test_weights_cli.py",
    "test_train_jax.py",
    "test_eval.py",
    "test_batch_predict.py",
    "test_weights_convert.py",
    "test_serve.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
