"""Old import paths that a version moved: each old module forwards every name to its new home, with a warning.

An old path keeps working for one version (`from dcgan.latent import interpolate` still gives the function),
and each use says where the name went, so code can move before the old path goes.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def forwarder(old: str, new: str, *more: str) -> Callable[[str], Any]:
    """A module `__getattr__` for the old module `old` that serves the names of the module `new` (or, for a module
    that was split, of the first of `new, *more` that holds the name)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # the import machinery's own probes (__path__, ...): the old path is a plain module
            raise AttributeError(name)
        for home in (new, *more):
            module = importlib.import_module(home)
            if hasattr(module, name):
                break
        value = getattr(module, name)  # an unknown name raises AttributeError, without a warning
        warnings.warn(f"{old}.{name} moved to {home}.{name}; the old path goes in the next version", DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
