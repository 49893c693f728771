"""Data order: a permutation per epoch derived from (seed, epoch) alone, so that a resumed run
sees exactly the batches an uninterrupted one would. Batches are (images, labels)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from ..data import MAX_FAILED_FRACTION, ImageData, Storage, to_unit_range
from ..data.shards import EpochPlan, stream_batches
from ..errors import DataError
from .distributed import DistInfo

__all__ = ["DataFeed"]

MIN_SAMPLES_TO_JUDGE = 200  # undecodable shard samples are judged once this many were read (a folder's pre-flight sample)


class DataFeed:
    """The batches of each epoch for this process, as float images in [-1, 1] on the training device, with labels."""

    def __init__(self, data: ImageData, batch_size: int, seed: int, device: torch.device, dist: DistInfo, workers: int | None = None):
        self.data, self.batch_size, self.seed, self.device, self.dist = data, batch_size, seed, device, dist
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        # The whole dataset lives on the training device as uint8 (a quarter of float32's size);
        # batches are gathered and scaled to [-1, 1] there.
        self.images = data.image_tensor.to(device) if data.in_memory else None
        self.labels = data.labels.to(device) if data.labels is not None else None
        # Every process takes its own batch of each global step: an epoch is len / (batch x processes) steps.
        self.steps_per_epoch = len(data) // (batch_size * dist.world_size)  # incomplete batches are dropped
        if self.steps_per_epoch < 1:
            raise DataError(f"{len(data)} images are fewer than one batch of {batch_size} for each of {dist.world_size} processes")

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of the data for `epoch`, from (seed, epoch) alone."""
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        return torch.randperm(len(self.data), generator=gen).to(self.device)

    def batch_indices(self, order: torch.Tensor, index: int) -> torch.Tensor:
        """This process's rows of global step `index`: process r takes the r-th batch of the step's group."""
        B, k = self.batch_size, index * self.dist.world_size + self.dist.rank
        return order[k * B : (k + 1) * B]

    def batch(self, order: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch `index` of the epoch with this `order`, from in-memory data."""
        rows = self.batch_indices(order, index)
        if self.images is None:
            raise DataError(f"the dataset {self.data.name!r} streams from disk: it has no in-memory batches")
        return to_unit_range(self.images[rows]), self._labels(rows)

    def _labels(self, rows: torch.Tensor) -> torch.Tensor | None:
        return self.labels[rows] if self.labels is not None else None

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """For shards: which samples this process reads in `epoch`, and in what order (see `dcgan.shards`)."""
        return EpochPlan(self.data.shard_set.counts, self.seed, epoch, self.batch_size, self.dist.world_size, self.dist.rank)

    def epoch_batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The batches of `epoch` from batch index `start` on."""
        storage = self.data.storage
        if storage is Storage.SHARDS:
            # Shards stream in their own planned order: shards permuted by (seed, epoch), each through a seeded
            # shuffle buffer, a contiguous block per process; resuming at `start` skips exactly the steps before it.
            plan = self.epoch_plan(epoch)
            assert plan.steps == self.steps_per_epoch
            read = 0
            for images, labels, failed in stream_batches(self.data.shard_set, plan, start, self.workers, pin_memory=self.device.type == "cuda"):
                read += len(images)
                if failed > MAX_FAILED_FRACTION * read and read >= MIN_SAMPLES_TO_JUDGE:  # as for folders: >10% refuses
                    raise DataError(
                        f"{failed} of the {read} samples read from the shards this epoch could not be decoded "
                        f"(more than {MAX_FAILED_FRACTION:.0%}); see: dcgan data check {self.data.shard_set.spec!r}"
                    )
                yield to_unit_range(images.to(self.device, non_blocking=True)), (labels.to(self.device) if labels is not None else None)
            return
        order = self.epoch_order(epoch)
        if storage is Storage.MEMORY:
            for index in range(start, self.steps_per_epoch):
                yield self.batch(order, index)
            return
        # Streamed data: the same order, decoded by DataLoader workers.
        rows = torch.cat([self.batch_indices(order, i) for i in range(start, self.steps_per_epoch)])
        loader = torch.utils.data.DataLoader(
            self.data.stream_dataset,
            batch_size=self.batch_size,
            sampler=rows.cpu().tolist(),
            drop_last=True,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        for images, batch_rows in zip(loader, rows.split(self.batch_size)):
            yield to_unit_range(images.to(self.device, non_blocking=True)), self._labels(batch_rows)
