"""A shallow Inception-ResNet-v1 for the tests of training mechanics (distribution, resume,
fine-tuning phases): one block of each kind (A, B, C) instead of 5, 10 and 5, so the stem, all
three residual block types, both reductions and the head are still built, traced and trained, in
about a third of the time. Faithfulness to the paper is checked elsewhere (tests/models) on the
full networks; what these tests check does not depend on the number of repeated blocks.

In the test's own process, import the ``shallow_network`` fixture into the test module (it is
autouse there); in a subprocess, start the Python code with ``PRELUDE`` or the command with
``cli(...)``, and run it with ``env(...)``, which puts this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

MODEL = "inception_resnet_v1"
REPEATS = (1, 1, 1)
TESTS = str(Path(__file__).resolve().parent)
PRELUDE = "import shallow; shallow.patch()\n"


def patch() -> dict:
    """Makes ``MODEL``'s architectures shallow in this process; returns what it replaced."""
    from inception.models import networks

    replaced = {}
    for key, arch in list(networks.ARCHS.items()):
        if key[0] == MODEL:
            replaced[key] = arch
            networks.ARCHS[key] = dataclasses.replace(arch, repeats=REPEATS)
    return replaced


def restore(replaced: dict) -> None:
    from inception.models import networks

    networks.ARCHS.update(replaced)


def env(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) with the tests folder on ``PYTHONPATH``,
    so that a subprocess can ``import shallow``."""
    base = dict(os.environ if base is None else base)
    path = base.get("PYTHONPATH")
    base["PYTHONPATH"] = TESTS + (os.pathsep + path if path else "")
    return base


def cli(*args: str) -> list[str]:
    """The command ``inception ARGS...`` with the shallow network (run it with ``env(...)``)."""
    code = PRELUDE + "from inception.cli import main\nraise SystemExit(main())\n"
    return [sys.executable, "-c", code, *args]


@pytest.fixture(scope="module", autouse=True)
def shallow_network():
    """Autouse in a test module that imports it: the shallow network for the module's tests
    (built before its other module fixtures), the full one again after them."""
    replaced = patch()
    yield
    restore(replaced)
