"""Deprecated import path: the conditioning methods moved to `dcgan.models.conditioning` in 0.3.

Every name still resolves here, with a DeprecationWarning; this module goes in the next version.
"""

from __future__ import annotations

import warnings

from .models import conditioning as _moved


def __getattr__(name: str):
    if name.startswith("__"):  # the import machinery's own probes (__path__, ...): this is a plain module
        raise AttributeError(name)
    value = getattr(_moved, name)  # an unknown name raises AttributeError here, without a warning
    warnings.warn(
        f"dcgan.conditioning.{name} moved to dcgan.models.conditioning.{name}; the old path goes in the next version",
        DeprecationWarning,
        stacklevel=2,
    )
    return value
