"""Batches of an epoch from shards, read by DataLoader workers part by part, in the plan's step order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ...errors import DataError
from ..imagefiles import DecodeError
from .plan import PARTS, EpochPlan
from .source import ShardSet, iter_samples, member_table, random_access, read_members


# --------------------------------------------------------------------------- #
# Streaming batches
# --------------------------------------------------------------------------- #
class _ShardError(Exception):
    """Raised inside a reader and carried to the training process as a message."""


def _shard_samples(shards: ShardSet, plan: EpochPlan, shard: int, lo: int, hi: int) -> Iterator[tuple[bytes, int | None]]:
    """Samples lo..hi-1 of `shard` in this epoch's shuffled order, holding at most about one buffer of them."""
    order = plan.shard_permutation(shard)
    info = shards.shards[shard]
    if random_access(info.url):  # a local tar: read the wanted samples directly, by the member table
        table = member_table(info.url)
        if len(table) != info.count:
            raise _ShardError(
                f"shard {info.url} holds {len(table)} samples, but {info.count} were counted: it changed "
                f"since; check it with: dcgan data check {shards.spec!r}"
            )
        yield from read_members(info.url, table, order[lo:hi])
        return
    # Any other (pipe:, gzipped): stream it, holding the samples read ahead until their turn (about one buffer).
    wanted = {stored: position for position, stored in enumerate(order[lo:hi], start=lo)}
    held: dict[int, tuple[bytes, int | None]] = {}
    next_out, n_read = lo, 0
    for stored, (_, data, label) in enumerate(iter_samples(info.url)):
        n_read += 1
        if stored in wanted:
            held[wanted[stored]] = (data, label)
        while next_out in held:
            yield held.pop(next_out)
            next_out += 1
        if next_out >= hi:
            return
    if n_read != info.count or next_out < hi:
        raise _ShardError(
            f"shard {info.url} holds {n_read} samples, but {info.count} were counted: it changed since; "
            f"check it with: dcgan data check {shards.spec!r}"
        )


class _PartReader:
    """One part's batches, in order: decoded uint8 images (B, C, H, W) and labels (B,)."""

    def __init__(self, shards: ShardSet, plan: EpochPlan, part: int, skip_batches: int):
        self.shards, self.plan, self.part, self.skip = shards, plan, part, skip_batches
        self.failed = 0  # samples that did not decode (replaced by the part's previous good one)

    def batches(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None, int]]:
        """(epoch step, images, labels, failures so far) for each of the part's remaining batches."""
        B, size, c = self.plan.batch_size, self.shards.size, self.shards.channels
        new_batch = lambda: (np.empty((B, c, size, size), dtype=np.uint8), np.zeros(B, dtype=np.int64))  # noqa: E731
        images, labels = new_batch()  # filled in place, then handed over whole (no copy)
        j, filled, last_good = self.skip, 0, None
        pending: list[int] = []  # rows that failed to decode before the part's first good image
        for shard, lo, hi in self.plan.segments(self.part, self.skip):
            for data, label in _shard_samples(self.shards, self.plan, shard, lo, hi):
                try:
                    images[filled] = self.shards.decode(data)
                    last_good = filled
                    for k in pending:  # failures before the part's first good image take it
                        images[k] = images[filled]
                    pending = []
                except (DecodeError, OSError):
                    self.failed += 1
                    if last_good is not None:
                        images[filled] = images[last_good]
                    else:
                        pending.append(filled)
                labels[filled] = -1 if label is None else label
                filled += 1
                if filled == B:
                    if pending:
                        raise _ShardError(f"{B} samples in a row failed to decode in shard {self.shards.shards[shard].url}")
                    yield (
                        self.plan.step_of(self.part, j),
                        torch.from_numpy(images),
                        torch.from_numpy(labels) if self.shards.classes else None,
                        self.failed,
                    )
                    images, labels = new_batch()
                    j, filled, last_good = j + 1, 0, None


def _parts_of(worker: int, workers: int, start: int, parts: int) -> list[int]:
    """The parts a worker reads: those whose first remaining step, counted from `start`, falls to it in turn."""
    return [p for p in range(parts) if ((p - start) % parts) % workers == worker]


class ShardStream(torch.utils.data.IterableDataset):
    """One process's batches of one epoch from `start` on, in step order; a DataLoader worker reads its own parts.

    Items are (step, images uint8 (B, C, H, W), labels (B,) or None, failures, error message or "").
    """

    def __init__(self, shards: ShardSet, plan: EpochPlan, start: int):
        self.shards, self.plan, self.start = shards, plan, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        workers = info.num_workers if info is not None else 1
        parts = _parts_of(worker, workers, self.start, self.plan.parts)
        readers = [_PartReader(self.shards, self.plan, p, self.plan.batches_before(p, self.start)) for p in parts]
        streams = {r.part: r.batches() for r in readers}
        # This worker's steps come in turn: start + worker, start + worker + workers, ... each from the part it maps to.
        try:
            for step in range(self.start + worker, self.plan.steps, workers):
                part = step % self.plan.parts
                got_step, images, labels, failed = next(streams[part])
                if got_step != step:  # a planning bug, never a data problem
                    raise AssertionError(f"part {part} gave step {got_step}, expected {step}")
                yield step, images, labels, sum(r.failed for r in readers), ""
        except (_ShardError, DataError) as exc:
            yield -1, torch.empty(0), None, 0, str(exc)


def usable_workers(requested: int, parts: int = PARTS) -> int:
    """The largest divisor of `parts` not above `requested` (0 reads in the training process)."""
    if requested <= 0:
        return 0
    return max(d for d in range(1, parts + 1) if parts % d == 0 and d <= requested)


def stream_batches(
    shards: ShardSet, plan: EpochPlan, start: int, workers: int, pin_memory: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, int]]:
    """(uint8 images, labels or None, failures so far) for epoch steps `start`..plan.steps-1, in order.

    With `workers` > 0 a DataLoader's workers read (a divisor of PARTS of them); its in-order round
    robin over workers is exactly the step order, since worker w gives steps start + w, + 2w, ...
    """
    workers = usable_workers(workers, plan.parts)
    dataset = ShardStream(shards, plan, start)
    if workers == 0:
        items = iter(dataset)
    else:
        items = iter(
            torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory, prefetch_factor=4, persistent_workers=False
            )
        )
    failures = [0] * max(1, workers)
    expected = start
    for step, images, labels, failed, error in items:
        if error:
            raise DataError(error)
        if step != expected:
            raise AssertionError(f"the shard stream gave step {step}, expected {expected}")
        failures[(step - start) % max(1, workers)] = failed
        expected += 1
        yield images, labels, sum(failures)
