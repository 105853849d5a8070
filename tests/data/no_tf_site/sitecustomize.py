"""Hides tensorflow, seqio, tensorflow_text and clu from every process that has this folder on
PYTHONPATH (Python imports ``sitecustomize`` at start-up): a bare accelerator machine without them.

Each finder on ``sys.meta_path`` is wrapped so that it does not find those packages: ``import
seqio`` raises ModuleNotFoundError and ``importlib.util.find_spec('seqio')`` returns None, exactly
as when they are not installed (a finder that raised instead would also break libraries that
merely probe for them, e.g. torch._dynamo). Used by tests/test_bench_accelerator.py.
"""

import importlib.abc
import sys

BLOCKED = ("tensorflow", "seqio", "tensorflow_text", "clu")


class _Hide(importlib.abc.MetaPathFinder):
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return self._inner.find_spec(name, path, target)

    def invalidate_caches(self):
        if hasattr(self._inner, "invalidate_caches"):
            self._inner.invalidate_caches()

    def __getattr__(self, attr):  # find_distributions and the like
        return getattr(self._inner, attr)


sys.meta_path[:] = [_Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
