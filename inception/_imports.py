"""Running code around the first import of another package.

``import inception`` stays light (no Keras, no TensorFlow: ``inception --help`` answers at once),
yet the package's Keras-serialisable classes must be registered before Keras loads a saved
``Ensemble``. ``around_import("keras", ...)`` wraps the first import of Keras so that the
registration follows it, whichever is imported first. The command line uses the same hook to
keep TensorFlow's start-up lines (printed from C++ while it loads) off the terminal.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys


class _Around(importlib.abc.MetaPathFinder):
    """Finds ``name`` through the other finders, then runs its module inside ``context()``."""

    def __init__(self, name, context):
        self.name, self.context = name, context

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once, and not for the look-up below
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute, context = loader.exec_module, self.context

        def exec_module(module):
            with context():
                execute(module)

        loader.exec_module = exec_module
        return spec


def around_import(name: str, context) -> bool:
    """Runs the first import of ``name`` inside ``context()`` (a context manager factory).
    Returns ``False`` (and does nothing) when ``name`` is already imported."""
    if name in sys.modules:
        return False
    sys.meta_path.insert(0, _Around(name, context))
    return True


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 goes to /dev/null for the duration (C++ start-up logging included);
    Python exceptions still propagate and are printed afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def lazy_attributes(package: str, where: dict[str, str]):
    """A module ``__getattr__`` for ``package``: ``name`` is imported from
    ``package.<where[name]>`` on first use (sub-packages stay unloaded until then)."""

    def getattr_(name):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return getattr_
