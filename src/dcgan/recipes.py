"""Deprecated import path: moved to `dcgan.training.recipes` after 0.3.0; every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.recipes", "dcgan.training.recipes")
