"""Fixtures shared by the test modules (helpers without fixtures: ``helpers.py``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ilsvrc import imagenet2012_manual  # noqa: E402, F401  (fixtures made available to all tests)
from weights_fixtures import slim_checkpoints, timm_files  # noqa: E402, F401
