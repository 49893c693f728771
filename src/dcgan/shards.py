"""Deprecated import path: moved to `dcgan.data.shards` (reading) and `dcgan.data.shard_writer` (writing) after 0.3.0;
every name resolves, with a warning."""

from ._moved import forwarder

__getattr__ = forwarder("dcgan.shards", "dcgan.data.shards", "dcgan.data.shard_writer")
