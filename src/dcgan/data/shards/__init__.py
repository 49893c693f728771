"""WebDataset shards as a data source: `--data 'shards/train-{000000..000127}.tar'`.

A shard is a plain (or gzipped) tar whose members are grouped into samples by name:
`000042.jpg` and `000042.cls` are the image and class index of sample `000042` (the
WebDataset layout). Shards are named by a brace pattern (expanded with `braceexpand`),
a `::`-joined list, `pipe:` shell commands whose output is a tar (`pipe:aws s3 cp
s3://bucket/train-{000000..000127}.tar -`), or the `shards.json` index that `dcgan data
shard` writes (the wids shard-index format; a folder holding one works too). The
`webdataset` library opens the streams (`gopen`: local files and `pipe:`) and groups
members into samples (`tar_file_iterator`, `group_by_keys`); decoding is the folders'
`decode_image`, so every size, crop and channel rule is the same.

The order of an epoch is planned, so that it is deterministic and resumable:

* Every shard's number of samples is known before training (from the index, or from one
  counting pass whose result is cached). The epoch's sequence is the shards in a
  permutation of (seed, epoch), each shard's samples shuffled by a seeded shuffle buffer
  (`SHUFFLE_BUFFER` samples, reset at each shard, so memory stays flat).
* Process r of W takes the r-th contiguous block of steps x batch samples of that
  sequence; the last (fewer than batch x W) samples are left out, as `drop_last` does for
  data in memory. No sample is in two blocks, and every other sample is in one.
* A block is cut into `PARTS` contiguous parts; step t of the epoch is the next batch of
  part t mod PARTS. DataLoader workers take parts (worker w the parts p with p = w mod
  workers, the workers a divisor of PARTS), so the order does not depend on the number
  of workers, and each worker reads its parts' shards sequentially, once.
* A local, uncompressed shard is read through its member table (image offsets, lengths and labels from
  its tar headers, scanned once and cached): one `pread` per sample, no tar parsing while training. A
  `pipe:` command or a gzipped shard is read through, each part holding the samples that arrive before
  their turn. Both give the same samples in the same order.
* Resuming at step k of an epoch is exact: every part skips the batches of the steps
  before k (whole shards without opening them, the rest of a shard without decoding), and
  the run continues with the same batches, in the same order, as an uninterrupted run.
"""

from __future__ import annotations

from .plan import PARTS, SHUFFLE_BUFFER, EpochPlan, buffer_permutation
from .source import SHARD_INDEX, ShardInfo, ShardSet, expand_shard_spec, iter_samples, looks_like_shards, open_shards, read_samples
from .stream import ShardStream, stream_batches, usable_workers

__all__ = [
    "SHARD_INDEX",
    "PARTS",
    "SHUFFLE_BUFFER",
    "ShardInfo",
    "ShardSet",
    "looks_like_shards",
    "expand_shard_spec",
    "open_shards",
    "iter_samples",
    "read_samples",
    "buffer_permutation",
    "EpochPlan",
    "ShardStream",
    "stream_batches",
    "usable_workers",
]
