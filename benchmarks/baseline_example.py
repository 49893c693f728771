"""Speed baseline: the official PyTorch DCGAN example's training step, re-implemented.

Source: https://github.com/pytorch/examples/blob/main/dcgan/main.py

Reproduced from the example:
  * the 64x64 `nn.Sequential` Generator (nz -> ngf*8 -> ngf*4 -> ngf*2 -> ngf -> nc,
    ConvTranspose2d 4x4, BN + ReLU, Tanh, no biases) and Discriminator (nc -> ndf ->
    ndf*2 -> ndf*4 -> ndf*8 -> 1, Conv2d 4x4, LeakyReLU(0.2), BN from the second
    layer on, Sigmoid, no biases), nz=100, ngf=ndf=64, and its `weights_init`
    (conv weights N(0, 0.02), BN weights N(1, 0.02), BN biases 0);
  * nn.BCELoss on sigmoid outputs, Adam(lr=2e-4, betas=(0.5, 0.999)) for both nets;
  * the step order: D on the real batch (label 1) + backward, fake = G(noise), D on
    fake.detach() (label 0) + backward, optimizerD.step(); netG.zero_grad(), D(fake)
    with label 1 + backward, optimizerG.step(); `.item()` on errD, errG, D(x),
    D(G(z)) before and after the D step, every iteration (as the example's print does);
  * the data path: a map-style Dataset holding encoded image files (PNG-encoded
    once here, standing in for files on disk), decoded with PIL per item and put
    through Resize(64), CenterCrop(64), ToTensor, Normalize(0.5, 0.5), loaded by a
    DataLoader(shuffle=True, num_workers=2) re-created every epoch.
The one substitution: torchvision is unavailable, so the transforms are written with
Pillow + NumPy, following torchvision's semantics (Resize on the shorter side with
PIL bilinear, CenterCrop offsets rounded, ToTensor to float CHW in [0, 1]).
Left out (no effect on the step's speed beyond I/O): the example's image grids every
100 iterations and per-epoch checkpoints. The example never switches G to eval mode;
`BaselineTrainer.sample` does (BN running statistics, for scoring) and restores train mode.

    .venv/bin/python benchmarks/baseline_example.py --data digits --steps 20 --workers 2
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from PIL import Image

__all__ = ["weights_init", "build_baseline", "ExampleDataset", "BaselineTrainer", "main"]


def weights_init(m: nn.Module) -> None:
    """The example's custom initialisation, applied with `net.apply`."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def build_baseline(nc: int, nz: int = 100, ngf: int = 64, ndf: int = 64, device="cpu"):
    """(netG, netD) as in the example, initialised with `weights_init` (seed beforehand)."""
    netG = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 8),
        nn.ReLU(True),  # 4x4
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),  # 8x8
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),  # 16x16
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),  # 32x32
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),  # 64x64
    )
    netD = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),  # 32x32
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 8),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),  # 1x1
    )
    netG.apply(weights_init)
    netD.apply(weights_init)
    return netG.to(device), netD.to(device)


class ExampleDataset(torch.utils.data.Dataset):
    """Encoded images decoded per item with the example's transforms (Pillow + NumPy)."""

    def __init__(self, images_uint8: torch.Tensor, image_size: int = 64, nc: int | None = None):
        if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or images_uint8.shape[1] not in (1, 3):
            raise ValueError("images_uint8 must be a uint8 tensor (N, 1|3, H, W)")
        self.image_size = image_size
        self.nc = nc or images_uint8.shape[1]
        self.mode = "L" if self.nc == 1 else "RGB"
        self.files = []  # PNG bytes, one per image: the "files on disk"
        for img in images_uint8.permute(0, 2, 3, 1).numpy():
            buf = io.BytesIO()
            Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
            self.files.append(buf.getvalue())

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        img = Image.open(io.BytesIO(self.files[index])).convert(self.mode)
        s = self.image_size
        w, h = img.size  # Resize(s): shorter side to s, aspect kept, bilinear
        new_w, new_h = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
        top, left = int(round((new_h - s) / 2.0)), int(round((new_w - s) / 2.0))  # CenterCrop(s)
        img = img.crop((left, top, left + s, top + s))
        arr = np.asarray(img, dtype=np.uint8)  # ToTensor: HWC uint8 -> CHW float in [0, 1]
        x = torch.from_numpy(arr.reshape(s, s, -1).copy()).permute(2, 0, 1).float().div_(255)
        return x.sub_(0.5).div_(0.5), 0  # Normalize(0.5, 0.5) per channel; the example's (image, label)


class BaselineTrainer:
    """The example's training loop, stepped `n` iterations at a time."""

    def __init__(self, images_uint8, nc, image_size=64, batch_size=128, workers=2, device="cpu", seed=0, nz=100, bf16=False, channels_last=False):
        """`bf16` and `channels_last` are the two settings a user of the example would try first for speed (the
        example has neither): bf16 autocast around the forward passes (BCELoss on the fp32 output, outside it,
        since autocast refuses BCELoss), and both networks and the real batch in channels_last."""
        if image_size != 64:
            raise ValueError("the example's networks are for 64x64 images")
        torch.manual_seed(seed)
        self.device, self.nz = torch.device(device), nz
        self.bf16, self.channels_last = bf16, channels_last
        self.dataset = ExampleDataset(images_uint8, image_size, nc)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed)
        )
        self.generator, self.netD = build_baseline(nc, nz, device=self.device)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.netD.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.criterion = nn.BCELoss()
        self.optimizerD = optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self._it = None
        self.steps_done = 0

    def _next_batch(self):
        if self._it is not None:
            try:
                return next(self._it)
            except StopIteration:
                pass
        self._it = iter(self.loader)  # a new epoch: the example's `for i, data in enumerate(dataloader)`
        return next(self._it)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _step(self) -> dict:
        netG, criterion, device = self.generator, self.criterion, self.device

        def netD(x):  # the example's netD(x), in bf16 when asked; BCELoss gets fp32 either way
            with self._autocast():
                return self.netD(x).float()

        # (1) Update D: maximise log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        real_cpu = self._next_batch()[0].to(device)
        if self.channels_last:
            real_cpu = real_cpu.contiguous(memory_format=torch.channels_last)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), 1.0, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, self.nz, 1, 1, device=device)
        with self._autocast():
            fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G: maximise log(D(G(z)))
        netG.zero_grad()
        label.fill_(1.0)  # fake labels are real for the generator cost
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        self.steps_done += 1
        return {"loss_d": errD.item(), "loss_g": errG.item(), "d_x": D_x, "d_g_z1": D_G_z1, "d_g_z2": D_G_z2, "images": batch_size}

    def train_steps(self, n: int, warmup: int = 0) -> dict:
        """Run `n` iterations; the first `warmup` are excluded from `seconds`/`images_per_s`/`steps`."""
        times, images, last = [], [], {}
        for _ in range(n):
            t0 = time.perf_counter()
            last = self._step()  # the .item() calls synchronise, so the wall time is the step's
            times.append(time.perf_counter() - t0)
            images.append(last.pop("images"))
        timed = slice(warmup, None) if n > warmup else slice(None)
        seconds, total = sum(times[timed]), sum(times)
        return {
            "images_per_s": sum(images[timed]) / max(seconds, 1e-9),
            "seconds": seconds,
            "steps": len(times[timed]),
            "total_images_per_s": sum(images) / max(total, 1e-9),
            "total_seconds": total,
            "total_steps": n,
            "warmup_steps": n - len(times[timed]),
            **last,
        }

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """`n` images in [-1, 1] (CPU, float) from seeded noise, G in eval mode; train mode is restored."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.nz, 1, 1, generator=g)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return torch.cat([self.generator(c.to(self.device)).cpu() for c in z.split(256)])
        finally:
            self.generator.train(was_training)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Speed of the PyTorch DCGAN example's training step (64x64).")
    p.add_argument("--data", default="digits", help="a dataset name for dcgan.data.load_dataset (digits, mnist, ...)")
    p.add_argument("--data-dir", default=None, help="e.g. ../shared/data/mnist")
    p.add_argument("--steps", type=int, default=20, help="timed iterations (after the warm-up)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from dcgan.data import load_dataset

    data = load_dataset(args.data, args.data_dir)  # native size; the example upsizes to 64 per item
    print(
        f"{args.data}: {len(data)} images {tuple(data.images.shape[1:])}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.workers} workers, batch {args.batch_size}, {args.device}"
    )
    trainer = BaselineTrainer(data.images, data.channels, batch_size=args.batch_size, workers=args.workers, device=args.device, seed=args.seed)
    r = trainer.train_steps(args.warmup + args.steps, warmup=args.warmup)
    print(
        f"baseline (pytorch/examples dcgan): {r['images_per_s']:.1f} images/s over {r['steps']} steps "
        f"({r['seconds']:.2f} s; with {r['warmup_steps']} warm-up: {r['total_images_per_s']:.1f} images/s, "
        f"{r['total_seconds']:.2f} s) loss_d {r['loss_d']:.4f} loss_g {r['loss_g']:.4f} "
        f"D(x) {r['d_x']:.4f} D(G(z)) {r['d_g_z1']:.4f} / {r['d_g_z2']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
