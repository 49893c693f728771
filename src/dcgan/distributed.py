"""Deprecated import path: moved to `dcgan.training.distributed` after 0.3.0; every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.distributed", "dcgan.training.distributed")
