"""The models: the DCGAN pair (`networks`), the ways a conditional pair takes its class (`conditioning`) and
the distributions of z (`priors`).

`from dcgan.models import Generator, ModelConfig, ...` works as before the package split; the conditioning
parts (the `CONDITIONING` registry, class-conditional batch norm, label helpers) live in
`dcgan.models.conditioning`.
"""

from . import conditioning, priors
from .networks import *  # noqa: F403  (the names of networks.__all__)
from .networks import __all__ as _networks_all

__all__ = [*_networks_all, "conditioning", "priors"]
