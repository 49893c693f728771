"""Checkpoints: safetensors for every tensor, JSON for everything else, written atomically.

One checkpoint is one `.safetensors` file. Its tensors are named by owner
(`G.*`, `D.*`, `opt_g.*`, `opt_d.*`, `extra.*`) and its header metadata holds
JSON: the model config, the trainer's state and the optimizers' hyper-parameters.
Nothing is unpickled, so loading a file never runs code from it.

A run directory keeps its checkpoints in `RUN_DIR/checkpoints/`; `latest` is
the one `--resume` and every `CKPT` argument use by default.

`dcgan export` writes the same layout with G's tensors alone and a header
marked GENERATOR_FORMAT: every command that only samples (generate, sheet,
info, evaluate, ...) reads it like a checkpoint, and `--resume` refuses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from ._version import __version__
from .errors import CheckpointError, DCGANError, first_line
from .fileio import atomic_write_bytes
from .models import Discriminator, Generator, ModelConfig, build_discriminator, build_generator
from .rundir import BEST, CHECKPOINT_DIR, FAILED, LATEST

M = TypeVar("M", bound=nn.Module)

__all__ = [
    "Checkpoint",
    "TrainingRecord",
    "checkpoint_bytes",
    "checkpoint_from_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "atomic_write_bytes",
    "CHECKPOINT_DIR",
    "LATEST",
    "BEST",
    "FAILED",
    "GENERATOR_FORMAT",
]

FORMAT = "dcgan-checkpoint"
GENERATOR_FORMAT = "dcgan-generator"  # an exported generator: G's weights, config and training record; not resumable
FORMAT_VERSION = 1
EMA_PREFIX = "G_ema"  # the averaged generator's tensors: G_ema.blocks...


@dataclass
class TrainingRecord:
    """The JSON state of a checkpoint, typed: where training stood and how it got there.

    Every field has a default, so an exported generator (which keeps only part of
    it) and checkpoints of earlier versions read too. `callbacks` holds each
    training callback's `state_dict()` by the callback's name.
    """

    step: int = 0  # iterations done
    epoch: int = 0  # complete epochs done
    batch_in_epoch: int = 0  # position within the current epoch
    steps_per_epoch: int = 0  # iterations in one epoch (0: not recorded)
    processes: int = 1  # training processes (DDP world size)
    elapsed_s: float = 0.0  # training seconds over all sessions of the run
    precision: str | None = None  # what `--precision auto` resolved to: "fp32" or "bf16"
    train_config: dict = field(default_factory=dict)  # TrainConfig.to_dict()
    data: dict = field(default_factory=dict)  # name, source, num_images, image_size, channels, fingerprint
    callbacks: dict = field(default_factory=dict)  # callback name -> its state_dict()
    ema: dict = field(default_factory=dict)  # the averaged generator's settings and update count ({} without one)
    torch_version: str | None = None
    saved_at: str | None = None  # local time, ISO 8601

    @property
    def epoch_fraction(self) -> float:
        """Passes over the data so far, with the fraction of the current one."""
        return self.epoch + self.batch_in_epoch / max(self.steps_per_epoch, 1)

    @property
    def last(self) -> dict:
        """The last logged figures (loss_d, loss_g, d_real, d_fake, images_per_s), or {}."""
        return dict(self.callbacks.get("metrics", {}).get("last") or {})

    @property
    def best(self) -> dict:
        """{"fid", "step"} of the best --eval-every evaluation, or {}."""
        return dict(self.callbacks.get("eval", {}).get("best") or {})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingRecord:
        """Read a checkpoint's state; the layout before callbacks (top-level last, best, health, rollbacks) too."""
        data = dict(data or {})
        if "callbacks" not in data and any(k in data for k in ("last", "best", "health", "rollbacks")):
            data["callbacks"] = {
                "metrics": {"last": data.get("last") or {}},
                "eval": {"best": data.get("best") or {}},
                "health": {"monitor": data.get("health") or {}, "rollbacks": int(data.get("rollbacks", 0))},
            }
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _pack_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict) -> dict:
    """Put an optimizer's per-parameter tensors into `tensors`; return its JSON-able rest."""
    state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{param_id}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}


def _unpack_optimizer(prefix: str, packed: dict, tensors: dict) -> dict:
    state: dict[int, dict] = {}
    marker = f"{prefix}.state."
    for name, value in tensors.items():
        if name.startswith(marker):
            param_id, key = name[len(marker) :].split(".", 1)
            state.setdefault(int(param_id), {})[key] = value
    for param_id, extra in packed.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(extra)
    groups = []
    for group in packed["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model config, every tensor by name, and the JSON state."""

    model_config: ModelConfig
    tensors: dict[str, torch.Tensor]
    state: dict = field(default_factory=dict)  # the trainer's JSON state (step, epoch, train config, data)
    optimizers: dict = field(default_factory=dict)  # packed optimizer hyper-parameters by prefix
    dcgan_version: str = ""
    path: Path | None = None
    format: str = FORMAT  # FORMAT for a training checkpoint, GENERATOR_FORMAT for an exported generator

    def _sub(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    @property
    def record(self) -> TrainingRecord:
        """The state as a TrainingRecord (typed; older layouts are read too)."""
        return TrainingRecord.from_dict(self.state)

    @property
    def resumable(self) -> bool:
        """Whether training can continue from this file (an exported generator has no D, optimizers or RNG state)."""
        return self.format == FORMAT

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix + ".") for k in self.tensors)

    def load_module(self, prefix: str, module: M) -> M:
        """`module` with the weights stored under `prefix` (strict), returned for chaining."""
        try:
            module.load_state_dict(self._sub(prefix), strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise CheckpointError(
                f"{self.path}: {prefix} weights do not fit the model in its config ({first[1].strip() if len(first) > 1 else first[0]})"
            ) from None
        return module

    def load_optimizer(self, prefix: str, optimizer: torch.optim.Optimizer) -> None:
        try:
            optimizer.load_state_dict(_unpack_optimizer(prefix, self.optimizers[prefix], self.tensors))
            # Moments in the memory layout of their parameter (channels_last), as in the run that saved them:
            # fused Adam takes another code path for mixed layouts, and the resumed run would drift by rounding.
            # Shapes are checked here: torch does not, and fused Adam would read and write out of bounds.
            for group in optimizer.param_groups:
                for p in group["params"]:
                    state = optimizer.state.get(p, {})
                    for key, value in state.items():
                        if not torch.is_tensor(value) or key == "step":
                            continue
                        if value.shape != p.shape:
                            raise CheckpointError(
                                f"{self.path}: optimizer state {prefix} has a {key} of shape {tuple(value.shape)} "
                                f"for a parameter of shape {tuple(p.shape)}"
                            )
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{self.path}: optimizer state {prefix} does not fit the model ({exc})") from None

    @property
    def has_ema(self) -> bool:
        """Whether the file holds the averaged generator (the EMA of G's weights) beside the trained G."""
        return self.has(EMA_PREFIX)

    def generator_kind(self, raw: bool = False) -> str:
        """What `build_generator(raw=raw)` gives: "ema" or "raw" (the trained G)."""
        return "ema" if self.has_ema and not raw else "raw"

    def build_generator(self, device: torch.device | str = "cpu", raw: bool = False) -> Generator:
        """A Generator in eval mode on `device`: the averaged G with its standing batch-norm statistics
        when the file holds one (every sampling command's default), else, or with `raw`, the trained G."""
        prefix = EMA_PREFIX if self.generator_kind(raw) == "ema" else "G"
        G = self.load_module(prefix, build_generator(self.model_config))
        return G.to(device).eval()

    def build_discriminator(self, device: torch.device | str = "cpu") -> Discriminator:
        if not self.has("D"):
            raise CheckpointError(f"{self.path} holds no discriminator")
        D = self.load_module("D", build_discriminator(self.model_config))
        return D.to(device).eval()


def checkpoint_bytes(
    model_config: ModelConfig,
    G: nn.Module,
    D: nn.Module | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    state: dict | None = None,
    file_format: str = FORMAT,
    metadata: dict[str, str] | None = None,
    G_ema: nn.Module | None = None,
) -> bytes:
    """The bytes of a checkpoint file; `save_checkpoint` describes the arguments.

    `file_format` is FORMAT, or GENERATOR_FORMAT for an exported generator (G
    alone); `metadata` adds string entries to the header (an export's model card).
    """
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("G", G), ("D", D), (EMA_PREFIX, G_ema)):
        if module is not None:
            for k, v in module.state_dict().items():
                tensors[f"{prefix}.{k}"] = v.detach().cpu().contiguous().clone()
    packed = {}
    for prefix, opt in (optimizers or {}).items():
        packed[prefix] = _pack_optimizer(prefix, opt, tensors)
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous().clone()
    tensors = {k: v.cpu() for k, v in tensors.items()}
    header = {
        **(metadata or {}),
        "format": file_format,
        "format_version": str(FORMAT_VERSION),
        "dcgan_version": __version__,
        "model_config": json.dumps(model_config.to_dict()),
        "state": json.dumps(state or {}),
        "optimizers": json.dumps(packed),
    }
    return safetensors_save(tensors, metadata=header)


def save_checkpoint(
    path: str | os.PathLike,
    model_config: ModelConfig,
    G: nn.Module,
    D: nn.Module | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    state: dict | None = None,
    G_ema: nn.Module | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    `optimizers` maps a prefix ("opt_g", "opt_d") to an optimizer; `extra` holds
    further tensors (fixed noise, RNG states); `state` must be JSON-serialisable;
    `G_ema` is the averaged generator, with its standing batch-norm statistics.
    """
    return atomic_write_bytes(path, checkpoint_bytes(model_config, G, D, optimizers, extra, state, G_ema=G_ema))


HUB_PREFIX = "hf://"  # hf://owner/name[/path]: a generator on the Hugging Face Hub
HUB_GENERATOR = "generator.safetensors"  # what a Hub folder (`dcgan export --format hub`) holds G in


def _download_from_hub(ref: str) -> Path:
    """hf://owner/name[/path] -> the file, downloaded (or found in the cache) by huggingface_hub."""
    parts = ref[len(HUB_PREFIX) :].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise CheckpointError(f"{ref}: give a Hub model as hf://owner/name or hf://owner/name/file.safetensors")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or HUB_GENERATOR
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        raise CheckpointError(f"{ref} needs huggingface_hub (not installed): pip install 'dcgan[hub]'") from None
    unreachable = f"could not reach the Hugging Face Hub for {filename} in {repo_id}, and it is not in the Hub cache"
    with contextlib.suppress(Exception):  # the cache first: no network, and no retries when offline
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, local_files_only=True))
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(f"{unreachable} (HF_HUB_OFFLINE is set)")
    if not hub_reachable():  # huggingface_hub retries a refused connection for ~20 s, with a log line each time
        raise CheckpointError(f"{unreachable} ({constants.ENDPOINT} did not answer)")
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename))
    except Exception as exc:  # not found, unauthorised, dropped: huggingface_hub and httpx raise many types
        raise CheckpointError(
            f"could not download {filename} from the Hugging Face Hub repo {repo_id} ({type(exc).__name__}: {first_line(exc)})"
        ) from None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's endpoint (HF_ENDPOINT) accepts a TCP connection within `timeout` seconds."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, a run directory (meaning its latest checkpoint), a folder holding generator.safetensors
    (an export, or a Hub folder), or hf://owner/name[/path] (downloaded and cached by huggingface_hub), as a file path."""
    if str(path).startswith(HUB_PREFIX):
        return _download_from_hub(str(path))
    path = Path(path)
    if path.is_dir():
        for candidate in (path / CHECKPOINT_DIR / LATEST, path / LATEST, path / HUB_GENERATOR):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path} is a folder with no checkpoint (looked for {CHECKPOINT_DIR}/{LATEST} and {HUB_GENERATOR})")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint file or a run directory's latest checkpoint.

    Raises CheckpointError, with one line saying why, for anything that is not a
    complete dcgan checkpoint: another format, a truncated file, a foreign
    safetensors file, or a config that no model can be built from. An exported
    generator (`dcgan export`) loads too, with `resumable` False.
    """
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            _check_format(metadata, path)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors reports bad headers and short files with its own error types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable dcgan checkpoint ({reason})") from None
    return _from_parts(tensors, metadata, path)


def checkpoint_from_bytes(data: bytes, name: str = "the checkpoint") -> Checkpoint:
    """`load_checkpoint` for a file's bytes in memory (an export being checked before it is written)."""
    try:
        (length,) = struct.unpack("<Q", data[:8])  # safetensors: an 8-byte little-endian header length, then JSON
        metadata = json.loads(data[8 : 8 + length]).get("__metadata__") or {}
        _check_format(metadata, name)
        tensors = safetensors_load(data)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{name} is not a readable dcgan checkpoint ({first_line(exc) or type(exc).__name__})") from None
    return _from_parts(tensors, metadata, None)


def _check_format(metadata: dict, where) -> None:
    if metadata.get("format") not in (FORMAT, GENERATOR_FORMAT):
        raise CheckpointError(f"{where} is a safetensors file but not a dcgan checkpoint")


def _from_parts(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path | None) -> Checkpoint:
    """A Checkpoint from a file's tensors and header, or a one-line CheckpointError for a damaged header."""
    where = path if path is not None else "the checkpoint"
    try:
        version = int(metadata.get("format_version", "0"))
        if version > FORMAT_VERSION:
            raise CheckpointError(f"{where} was written by a newer dcgan (format {version}); upgrade dcgan to read it")
        raw_config = json.loads(metadata["model_config"])
        state = json.loads(metadata.get("state", "{}"))
        optimizers = json.loads(metadata.get("optimizers", "{}"))
        for what, value in (("model config", raw_config), ("state", state), ("optimizers", optimizers)):
            if not isinstance(value, dict):
                raise CheckpointError(f"{where} has a damaged header (its {what} is not a JSON object)")
        model_config = ModelConfig.from_dict(raw_config)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, DCGANError) as exc:
        raise CheckpointError(f"{where} has a damaged header ({first_line(exc)})") from None
    return Checkpoint(model_config, tensors, state, optimizers, metadata.get("dcgan_version", ""), path, metadata["format"])
