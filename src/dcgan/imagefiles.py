"""Deprecated import path: moved to `dcgan.data.imagefiles` after 0.3.0; every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.imagefiles", "dcgan.data.imagefiles")
