"""The plan of an epoch over shards: which samples each process and part reads, in what order."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

PARTS = 8  # contiguous parts of each process's block, read in parallel; fixed so the order never depends on workers
SHUFFLE_BUFFER = 512  # samples a part's shuffle buffer holds; reset at each shard, so resuming replays one shard at most


# --------------------------------------------------------------------------- #
# The plan of an epoch
# --------------------------------------------------------------------------- #
def _mix(*values: int | str) -> int:
    """One 63-bit seed from several integers (seed, epoch, shard), the same on every machine."""
    digest = hashlib.sha256(",".join(map(str, values)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def buffer_permutation(n: int, buffer: int, seed: int) -> list[int]:
    """The order in which a shuffle buffer of `buffer` samples emits a shard's `n` samples (indices in stored order).

    The buffer fills with the first samples; each further sample replaces a randomly chosen one,
    which is emitted; at the end the rest leave in random order. Sample j of the output is always
    among the first j + buffer stored ones, so a reader holds at most `buffer` samples at a time.
    """
    rng = random.Random(seed)
    held = list(range(min(buffer, n)))
    out: list[int] = []
    for incoming in range(len(held), n):
        i = rng.randrange(len(held))
        out.append(held[i])
        held[i] = incoming
    rng.shuffle(held)
    out.extend(held)
    return out


@dataclass(frozen=True)
class EpochPlan:
    """Which samples one process reads in one epoch, and in what order; a function of its fields alone."""

    counts: tuple[int, ...]  # samples per shard, in the order the shards were given
    seed: int
    epoch: int
    batch_size: int
    world_size: int = 1
    rank: int = 0
    parts: int = PARTS
    buffer: int = SHUFFLE_BUFFER

    @property
    def steps(self) -> int:
        """Steps in the epoch: every process takes one batch per step."""
        return sum(self.counts) // (self.batch_size * self.world_size)

    def shard_order(self) -> list[int]:
        """The shards of this epoch, a permutation from (seed, epoch)."""
        order = list(range(len(self.counts)))
        random.Random(_mix(self.seed, self.epoch, "shards")).shuffle(order)
        return order

    def shard_permutation(self, shard: int) -> list[int]:
        """The order of one shard's samples this epoch (the shuffle buffer's, from (seed, epoch, shard))."""
        return buffer_permutation(self.counts[shard], self.buffer, _mix(self.seed, self.epoch, shard))

    def batches_before(self, part: int, step: int) -> int:
        """Batches `part` gives before epoch step `step`: the steps t < step with t mod parts = part."""
        return len(range(part, step, self.parts))

    def part_batches(self, part: int) -> tuple[int, int]:
        """(first batch of this process's block, number of batches) that `part` holds."""
        sizes = [self.batches_before(p, self.steps) for p in range(self.parts)]
        return sum(sizes[:part]), sizes[part]

    def step_of(self, part: int, j: int) -> int:
        """The epoch step at which `part` gives its j-th batch."""
        return part + j * self.parts

    def segments(self, part: int, skip_batches: int = 0) -> list[tuple[int, int, int]]:
        """The (shard, first, stop) ranges, in the shards' shuffled orders, that `part` reads after skipping
        `skip_batches` batches; their samples in turn make its batches."""
        first, n = self.part_batches(part)
        if skip_batches >= n:
            return []
        B = self.batch_size
        start = self.rank * self.steps * B + (first + skip_batches) * B  # position in the epoch's sequence
        stop = self.rank * self.steps * B + (first + n) * B
        out, offset = [], 0
        for shard in self.shard_order():
            count = self.counts[shard]
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                out.append((shard, lo - offset, hi - offset))
            offset += count
            if offset >= stop:
                break
        return out
