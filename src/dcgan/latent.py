"""Deprecated import path: moved to `dcgan.explore.latent` after 0.3.0; every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.latent", "dcgan.explore.latent")
