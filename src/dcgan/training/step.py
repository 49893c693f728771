"""The GAN step: G, D, their optimizers and autocast in one object; `step(batch)` is one iteration.

The paper's settings (section 4; `--recipe paper`): Adam with lr 2e-4 and beta1 0.5, images in
[-1, 1], BCE-with-logits for D and the non-saturating -log D(G(z)) for G. D sees a real batch and a
fake batch in separate forward passes, so batch norm computes statistics per batch, as in the
paper's code. On top, as configured: another loss (`--loss`, losses.py), a lazy R1 penalty on the
real images (`--r1-gamma`), and differentiable augmentation of everything D sees (`--augment`, augment.py).
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import ConfigError
from ..models import ModelConfig, build_models
from ..sampling import sample_z
from . import distributed
from .augment import Augment
from .config import TrainConfig
from .ema import GeneratorEMA
from .losses import LOSSES

__all__ = ["GANStep", "cpu_has_bf16", "cpu_matrix_units", "Batch"]

Batch = tuple  # (images (B, C, H, W) float in [-1, 1], labels (B,) int64 or None)

ADAM_KWARGS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}


_ISAS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_matrix_units() -> str:
    """What this CPU multiplies matrices with, for the person watching: "AMX", "AVX512-BF16", or the
    vector ISA ATen dispatches to (e.g. "AVX2", which `ATEN_CPU_CAPABILITY=avx2` forces)."""
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return torch.backends.cpu.get_cpu_capability()


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (x86 AVX512-BF16 or AMX) and oneDNN may use it.

    Both must hold: the CPU's flags (from /proc/cpuinfo on Linux) and oneDNN's own view, which
    `ONEDNN_MAX_CPU_ISA` can narrow (with `ONEDNN_MAX_CPU_ISA=AVX2` an AMX machine runs the kernels of
    an AVX2-only CPU, so it must also choose fp32 as one would).
    """
    flags = _cpu_flags()
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return False
    # oneDNN's ISA caps below AVX512_CORE_BF16: it would emulate bf16 there (ONEDNN_MAX_CPU_ISA=AVX512_CORE
    # still allows bf16 convolutions, through the slow emulation of a CPU without the instructions).
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap in _ISAS_WITHOUT_BF16:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # False when oneDNN is capped below bf16
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


class GANStep:
    """G and D with their optimizers, the training noise stream and the precision; one `step` per real batch.

    Optimisation stays here, out of the modules: G and D are the plain models of
    `models/networks.py`, built by its factory.
    """

    def __init__(self, model_config: ModelConfig, config: TrainConfig, device: torch.device, dist: distributed.DistInfo):
        self.model_config, self.config, self.device, self.dist = model_config, config, device, dist
        if config.seed is None:
            raise ConfigError("GANStep needs a seed: the Trainer draws one when none is given")
        self.seed: int = config.seed
        # Model init draws from the global RNG: seeded, without disturbing the caller's stream.
        G, D = build_models(model_config, seed=config.seed)
        self.G, self.D = G.to(device), D.to(device)
        if config.channels_last:
            # Module.to takes memory_format (documented, and it works); torch's stubs leave it out of the overloads
            self.G.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.D.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if config.sync_bn and device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        if dist.enabled and config.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        self.adam = "fused" if config.adam == "auto" else config.adam  # the Adam implementation, resolved
        adam = ADAM_KWARGS[self.adam]
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas, **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas, **adam)
        self.loss = LOSSES[config.loss]
        # What D sees of real and fake images (None: the images themselves); its own seeded random stream
        augment = Augment(config.augment, config.augment_p, config.augment_target, config.augment_kimg, config.batch_size, device, self.seed + 5)
        self.augment: Augment | None = augment if augment.enabled else None
        self.d_updates = 0  # D updates so far: the lazy R1 penalty is due on every r1_every-th
        # bf16 autocast by default on CUDA, and on CPUs with bf16 instructions (AVX512-BF16 or AMX), where it
        # measured 1.8x faster than fp32 (BENCHMARKS.md); elsewhere bf16 is emulated and slower.
        self.bf16 = config.precision == "bf16" or (
            config.precision == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))
        )
        # G and D as the steps call them: compiled and DDP-wrapped as configured
        self._G_fwd: nn.Module = self.G
        self._D_fwd: nn.Module = self.D
        if config.compile:
            # compiling a Module gives an OptimizedModule (a Module); torch's stubs say a plain callable
            self._G_fwd, self._D_fwd = torch.compile(self.G), torch.compile(self.D)  # type: ignore[assignment]
        self._D_through: nn.Module = self._D_fwd  # D as the G step sees it: never the DDP wrapper (its weights get no gradient there)
        if dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self._G_fwd, self._D_fwd = DDP(self._G_fwd, device_ids=ids), DDP(self._D_fwd, device_ids=ids)
        # The training noise: its own explicitly seeded stream, one per process.
        self.noise_gen = torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * dist.rank)
        # The averaged G that samples and checkpoints use (None with --no-ema); it draws no training noise.
        self.ema: GeneratorEMA | None = None
        if config.ema:
            self.ema = GeneratorEMA(
                self.G, config.ema_half_life * 1000, config.ema_rampup, config.standing_batches, config.batch_size, seed=self.seed + 3
            )

    @property
    def precision(self) -> str:
        """What the run computes in: "bf16" (autocast) or "fp32"."""
        return "bf16" if self.bf16 else "fp32"

    def compute_path(self) -> str:
        """The path this step takes, in one line: precision and why, memory layout, Adam, compilation, threads."""
        if self.device.type == "cpu":
            units, why = cpu_matrix_units(), None
            if self.config.precision == "auto" and self.bf16:
                why = f"this CPU has {units}"
            elif self.config.precision == "auto" and units in ("AMX", "AVX512-BF16"):
                why = f"the CPU has {units} but oneDNN is capped below it (ONEDNN_MAX_CPU_ISA)"
            elif self.config.precision == "auto":
                why = f"no bf16 instructions on this CPU ({units})"
            where = f"cpu, {torch.get_num_threads()} thread(s)"
        else:
            why, where = None, str(self.device)
        precision = "bf16 autocast" if self.bf16 else "fp32"
        parts = [
            f"{precision} ({why})" if why else precision,
            "channels_last" if self.config.channels_last else "NCHW",
            f"{self.adam} Adam",
            *(["torch.compile"] if self.config.compile else []),
            where,
        ]
        return ", ".join(parts)

    def autocast(self):
        """bf16 autocast on the training device when the run uses it, else a no-op context."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------ #
    # One iteration: the D step(s), then the G step(s)
    # ------------------------------------------------------------------ #
    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One iteration on `(images, labels)`: `d_steps` D updates, then `g_steps` G updates.

        Returns the figures (loss_d, loss_g, d_real, d_fake) as device tensors: reading them
        would synchronise with the device, which the loop does once per log window.
        As in the paper's code, the fake batch of the last D update is reused for
        the first G update, which saves one forward pass of G.
        """
        real, labels = batch
        n, cfg = real.shape[0], self.model_config
        # A conditional pair: the fakes take the real batch's classes, so D sees the same class mix on
        # both sides and cannot tell fakes by their labels. The unconditional pair ignores the labels.
        labels = labels if cfg.conditional else None
        if self.config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        for i in range(self.config.d_steps):
            z = sample_z(n, cfg.z_dim, cfg.prior, self.noise_gen)
            if i == self.config.d_steps - 1:
                with self.autocast():
                    fake = self._G_fwd(z, labels)  # (B, C, H, W), keeps its graph for the G step
            else:
                with torch.no_grad(), self.autocast():
                    fake = self._G_fwd(z, labels)
            figures = self.d_step(real, fake.detach(), labels)
        figures.update(self.g_step(fake, labels))
        for _ in range(self.config.g_steps - 1):
            with self.autocast():
                fake = self._G_fwd(sample_z(n, cfg.z_dim, cfg.prior, self.noise_gen), labels)
            figures.update(self.g_step(fake, labels))
        if self.ema is not None:
            self.ema.update(self.G, n * self.dist.world_size)  # every process averages the same weights
        return figures

    def sampling_generator(self, step: int) -> nn.Module:
        """The G to draw pictures from at `step`: the averaged one with fresh standing statistics, or G itself."""
        return self.ema.refresh(step) if self.ema is not None else self.G

    def d_step(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One D update on a real batch and a (detached) fake batch of the same classes; figures stay on the device."""
        self.D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        if self.augment is not None:  # the same random transforms for both sides, each image its own draw
            real, fake = self.augment(real), self.augment(fake)
        # Separate forward passes: batch norm normalises real and fake batches each by their own statistics.
        # One backward per pass; with several processes the gradients are averaged once, after the second.
        no_sync = self._D_fwd.no_sync() if isinstance(self._D_fwd, DDP) else contextlib.nullcontext()  # DDP: dist.enabled
        with no_sync:
            with self.autocast():
                logits_real = self._D_fwd(real, labels).float()  # (B,)
            loss_real = self.loss.d_real(logits_real, self.config.label_smoothing)
            loss_real.backward()
            if self.config.r1_gamma > 0 and self.d_updates % self.config.r1_every == 0:
                self.r1_penalty(real, labels).backward()
        with self.autocast():
            logits_fake = self._D_fwd(fake, labels).float()  # (B,)
        loss_fake = self.loss.d_fake(logits_fake)
        loss_fake.backward()
        loss = loss_real.detach() + loss_fake.detach()
        self.opt_d.step()
        self.d_updates += 1
        if self.augment is not None:
            self.augment.observe(logits_real)
        return {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(logits_real.detach()).mean(),  # D(x)
            "d_fake": torch.sigmoid(logits_fake.detach()).mean(),  # D(G(z)) before D's update
        }

    def r1_penalty(self, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The lazy R1 penalty (Mescheder et al. 2018; StyleGAN2's lazy schedule): gamma / 2 * E|grad_x D(x)|^2
        on the real batch, times r1_every because it is applied on one D update in r1_every. In fp32: a second
        derivative in bf16 would be mostly rounding. Through D itself, not its DDP wrapper, inside D's no_sync
        block: its weight gradients join the real pass's and are averaged with the fake pass's."""
        x = real.detach().float().requires_grad_(True)
        logits = self._D_through(x, labels).float()  # (B,)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)  # (B, C, H, W)
        return self.config.r1_gamma / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean() * self.config.r1_every

    def g_step(self, fake: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One G update through D (and the augmentation, when on) on a fake batch that still carries G's graph."""
        self.D.requires_grad_(False)  # gradients flow through D to G, but D's weight gradients are not needed
        self.opt_g.zero_grad(set_to_none=True)
        if self.augment is not None:
            fake = self.augment(fake)
        with self.autocast():
            logits = self._D_through(fake, labels).float()
        loss = self.loss.g(logits)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return {"loss_g": loss.detach()}

    # ------------------------------------------------------------------ #
    # Noise stream and learning rates
    # ------------------------------------------------------------------ #
    def reseed_for_step(self, step: int) -> None:
        """With several processes: each one's noise stream restarts from (seed, rank, step) before every step,
        so a checkpoint at any step needs no per-process RNG state to resume exactly."""
        seed = ((self.seed * 1_000_003 + self.dist.rank) * 1_000_033 + step) % 2**63
        self.noise_gen.manual_seed(seed)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The step's own state beyond models, optimizers and the noise stream (checkpoint `extra.` entries)."""
        state = {"gan.d_updates": torch.tensor([self.d_updates], dtype=torch.int64)}
        if self.augment is not None:
            state.update(self.augment.state_tensors())
        return state

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore `state_tensors` (keys without the `extra.` prefix); an older checkpoint without them keeps the fresh state."""
        if "gan.d_updates" in tensors:
            self.d_updates = int(tensors["gan.d_updates"].reshape(-1)[0])
        if self.augment is not None:
            self.augment.load_state_tensors(tensors)

    def scale_learning_rates(self, factor: float) -> None:
        """Set both learning rates to the configured ones times `factor`."""
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def checkpoint_size_estimate(self) -> int:
        """About how large one checkpoint is: weights and buffers of G and D, and both Adams' two moments."""
        params = sum(p.numel() * p.element_size() for m in (self.G, self.D) for p in m.parameters())
        buffers = sum(b.numel() * b.element_size() for m in (self.G, self.D) for b in m.buffers())
        averaged = sum(t.numel() * t.element_size() for t in self.ema.module.state_dict().values()) if self.ema else 0
        return 3 * params + buffers + averaged + 64 * 1024
