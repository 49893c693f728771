"""Deprecated import path: moved to `dcgan.training.health` after 0.3.0; every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.health", "dcgan.training.health")
