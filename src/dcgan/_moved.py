"""Old import paths that a version moved: each old module forwards every name to its new home, with a warning.

An old path keeps working for one version (`from dcgan.latent import interpolate` still gives the function),
and each use says where the name went, so code can move before the old path goes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
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


# The modules that moved after 0.3.0: old path -> new home(s). None of them is a file any more: `OldPaths`
# answers their imports with a module that forwards, so the package's folder shows only where things are.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "dcgan.conditioning": ("dcgan.models.conditioning",),
    "dcgan.latent": ("dcgan.explore.latent",),
    "dcgan.probe": ("dcgan.explore.probe",),
    "dcgan.filters": ("dcgan.explore.filters",),
    "dcgan.imagefiles": ("dcgan.data.imagefiles",),
    "dcgan.lsun": ("dcgan.data.lsun",),
    "dcgan.datacheck": ("dcgan.data.check",),
    "dcgan.download": ("dcgan.data.download",),
    "dcgan.shards": ("dcgan.data.shards", "dcgan.data.shard_writer"),
    "dcgan.health": ("dcgan.training.health",),
    "dcgan.distributed": ("dcgan.training.distributed",),
    "dcgan.recipes": ("dcgan.training.recipes",),
    "dcgan.configfile": ("dcgan.training.configfile",),
}


class OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """An import finder for the paths of MOVED_MODULES: `import dcgan.latent` gives a module whose every name
    resolves from its new home, with a DeprecationWarning (see `forwarder`)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a plain module

    def exec_module(self, module: Any) -> None:
        homes = MOVED_MODULES[module.__name__]
        module.__doc__ = f"Deprecated import path: moved to {' and '.join(homes)} after 0.3.0; every name resolves, with a warning."
        module.__getattr__ = forwarder(module.__name__, *homes)


def install() -> None:
    """Put `OldPaths` on sys.meta_path once (dcgan/__init__ calls it)."""
    if not any(isinstance(finder, OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(OldPaths())
