"""The model side of `dcgan serve`: `Explorer` and the limits it checks, pure of HTTP.

`Explorer` holds the generator and does the work: numbered sample grids, walks,
vector arithmetic with its noise grid, inversion of an uploaded image and moves
along principal directions. Every method takes plain values, checks them against
`ServeLimits` (a `ConfigError` with one line when they are out of bounds) and
returns a JSON-ready dict whose pictures are PNG data URLs. Nothing here touches
the filesystem. `ModelGate` keeps one request at a time on the model (`Busy` when
the queue is full); the references and classes are described in `dcgan.server`.
"""

import base64
import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from PIL import Image

from ..checkpoint import Checkpoint
from ..data.imagefiles import DecodeError, decode_image
from ..errors import ConfigError
from ..explore.figures import arithmetic_figure, inversion_figure, walk_figure, walk_frames
from ..explore.latent import (
    INTERPOLATIONS,
    PrincipalDirections,
    class_walk,
    interpolate,
    invert,
    latent_sheet,
    move_along,
    pick,
    principal_directions,
    vector_arithmetic,
)
from ..figures import labelled_grid, numbered_sheet
from ..imaging import grid_image, tensor_to_pil, to_unit_range
from ..models.conditioning import resolve_class
from ..sampling import MAX_SEED, generate

__all__ = ["ServeLimits", "Busy", "ModelGate", "Explorer"]


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server. The defaults keep a CPU answer within seconds."""

    max_samples: int = 256  # samples on one grid (n)
    max_walk_steps: int = 32  # images on one walk, endpoints included
    max_group: int = 16  # exemplars in one arithmetic group
    max_noise: float = 2.0  # standard deviation of the arithmetic grid's noise
    max_upload_bytes: int = 8 << 20  # size of an uploaded image file
    max_upload_pixels: int = 16_000_000  # width x height of an uploaded image, read from its header
    max_invert_steps: int = 1000  # Adam steps of one inversion
    max_invert_restarts: int = 16  # random starts of one inversion
    max_invert_batch: int = 64  # restarts x classes of an inversion that infers the class (each start is a run of Adam)
    max_slide: float = 5.0  # distance along a principal direction, in prior standard deviations
    max_z_abs: float = 1000.0  # magnitude of any coordinate of an explicit z
    directions: int = 8  # principal directions offered as sliders (at most z_dim)
    max_waiting: int = 8  # requests queued behind the one on the model before others get a 503
    wait_timeout_s: float = 120.0  # longest a queued request waits for the model before a 503


class Busy(Exception):
    """The model is taken and the queue is full (or the wait ran out): answered with a 503."""


class ModelGate:
    """One request at a time on the model, at most `max_waiting` queued behind it, each for at most `timeout_s`.

    A thread lock, because FastAPI runs plain `def` endpoints in a thread pool. The
    model is small enough that parallel requests would only fight over the same cores.
    """

    def __init__(self, max_waiting: int, timeout_s: float):
        self._model = threading.Lock()
        self._places = threading.BoundedSemaphore(max_waiting + 1)  # the one running plus those waiting
        self.timeout_s = timeout_s

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if not self._places.acquire(blocking=False):
            raise Busy("the server is busy with other requests; try again in a moment")
        try:
            if not self._model.acquire(timeout=self.timeout_s):
                raise Busy(f"the model stayed busy for {self.timeout_s:g} s; try again in a moment")
            try:
                yield
            finally:
                self._model.release()
        finally:
            self._places.release()


# --------------------------------------------------------------------------- #
# Pictures as data URLs
# --------------------------------------------------------------------------- #
def _data_url(img: Image.Image, fmt: str = "PNG", **kwargs) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _png(image: torch.Tensor) -> str:
    """One image (C, H, W) in [-1, 1] at its own resolution (the page enlarges it)."""
    return _data_url(tensor_to_pil(image))


def _gif(frames: list[Image.Image], duration_ms: int = 120) -> str:
    return _data_url(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)


def _z_ref(z: torch.Tensor, label: int | None = None) -> dict:
    # float32 -> Python float is exact, and json writes the shortest text that reads back to the same float32.
    ref = {"z": [float(v) for v in z.float()]}
    return ref if label is None else {**ref, "class": label}


def _with_class(answer: dict, label: int | None) -> dict:
    """`answer` with the class it was drawn in; an unconditional model's answers stay as they were."""
    return answer if label is None else {**answer, "class": label}


def _check(value, low, high, what: str) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{what} must be from {low:g} to {high:g}, got {value:g}")


# --------------------------------------------------------------------------- #
# The work
# --------------------------------------------------------------------------- #
class Explorer:
    """A generator and the latent-space tools the page offers, bounded by `limits`."""

    def __init__(self, ckpt: Checkpoint, device: torch.device | str = "cpu", limits: ServeLimits = ServeLimits(), raw: bool = False):
        self.ckpt = ckpt
        self.config = ckpt.model_config
        self.G = ckpt.build_generator(device, raw=raw)
        self.generator_kind = ckpt.generator_kind(raw)  # "ema" (the average, default) or "raw"
        self.limits = limits
        self._directions: dict[int | None, PrincipalDirections] = {}  # by class (None: unconditional)

    # Latent references ----------------------------------------------------
    def resolve(self, ref: dict) -> torch.Tensor:
        """The z (D,) of a reference: {"seed", "n", "index"} or {"z": [...]}."""
        if ref.get("z") is not None:
            z = torch.tensor(ref["z"], dtype=torch.float32)
            if z.shape != (self.config.z_dim,):
                raise ConfigError(f"z has {z.numel()} numbers but this generator takes {self.config.z_dim}")
            if not torch.isfinite(z).all() or z.abs().max() > self.limits.max_z_abs:
                raise ConfigError(f"z must hold finite numbers within +-{self.limits.max_z_abs:g}")
            return z
        seed, n, index = ref.get("seed"), ref.get("n"), ref.get("index")
        if seed is None or n is None or index is None:
            raise ConfigError('a latent point is {"seed", "n", "index"} (a sample of a grid) or {"z": [...]}')
        _check(seed, 0, MAX_SEED, "seed")
        _check(n, 1, self.limits.max_samples, "n")
        return pick(latent_sheet(self.config, seed, n), [index], "index")[0]

    def label(self, requested: int | None = None, refs: Sequence[dict] = ()) -> int | None:
        """The class to draw in: `requested` (a request's "class"), else the one class its references carry.

        None for an unconditional model, which refuses any class; a conditional one needs a class
        from one or the other. Every class given is checked, each a one-line ConfigError."""
        c = self.config
        carried = [r["class"] for r in refs if r.get("class") is not None]
        checked = [resolve_class(k, c.class_names, c.num_classes) for k in [requested, *carried] if k is not None]
        if not c.conditional:
            return None
        if requested is not None:
            return checked[0]
        if not carried:
            raise ConfigError(f'this model is class-conditional: give a "class" from 0 to {c.num_classes - 1}')
        if len(set(carried)) > 1:
            shown = ", ".join(str(k) for k in sorted(set(carried)))
            raise ConfigError(f'the samples are in different classes ({shown}): give a "class" to draw them in')
        return checked[0]

    # Requests ---------------------------------------------------------------
    def info(self) -> dict:
        """What the page shows about the model, and the limits it should respect."""
        c, record = self.config, self.ckpt.record
        train = record.train_config or {}
        data = record.data or {}
        return {
            "checkpoint": self.ckpt.path.name if self.ckpt.path else "",
            "step": self.ckpt.step,
            "image_size": c.image_size,
            "channels": c.channels,
            "z_dim": c.z_dim,
            "prior": c.prior,
            "generator": self.generator_kind,  # "ema": the averaged G (the default), "raw": the trained G
            "data": data.get("name") or train.get("data") or "",
            "interpolations": list(INTERPOLATIONS),
            "directions": min(self.limits.directions, c.z_dim),
            "conditional": c.conditional,
            "classes": [c.class_name(k) for k in range(c.num_classes)],  # names by class index; [] if unconditional
            "conditioning": c.conditioning if c.conditional else None,  # "projection" or "concat"
            "limits": asdict(self.limits),
        }

    def sheet(self, seed: int, n: int, label: int | None = None) -> dict:
        """The numbered grid `dcgan sheet --seed seed -n n` draws: each sample, its reference, the whole picture.

        A conditional model draws the same z in class `label`: changing the class keeps each cell's style."""
        _check(seed, 0, MAX_SEED, "seed")
        _check(n, 1, self.limits.max_samples, "n")
        label = self.label(label)
        images = generate(self.G, latent_sheet(self.config, seed, n), label)
        return _with_class(
            {
                "seed": seed,
                "n": n,
                "images": [_png(im) for im in images],
                "latents": [_with_class({"seed": seed, "n": n, "index": i}, label) for i in range(n)],
                "picture": _data_url(numbered_sheet(images)),
            },
            label,
        )

    def walk(self, a: dict, b: dict, steps: int = 10, method: str = "spherical", label: int | None = None, end_label: int | None = None) -> dict:
        """The walk from a to b: its images, a strip picture and a looping GIF.

        A conditional model walks in class `label` (default: the class both ends carry). With
        `end_label` the class input moves from `label` to it along the way as well; from a point to
        itself that is a walk across classes at a fixed z (the style kept, the class changed). Ends
        that carry different classes, with neither class given, walk from the one to the other."""
        _check(steps, 2, self.limits.max_walk_steps, "steps")
        if method not in INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {method!r}: use {' or '.join(INTERPOLATIONS)}")
        ends = (a.get("class"), b.get("class"))
        if label is None and end_label is None and None not in ends and ends[0] != ends[1]:
            label, end_label = ends  # each end drawn as it was
        label = self.label(label, [a, b])
        end_label = None if end_label is None else self.label(end_label)
        za, zb = self.resolve(a), self.resolve(b)
        if end_label is not None and torch.equal(za, zb):  # the class moves, z stays exactly
            assert label is not None  # an end class means a conditional model, so a start class too
            walks = class_walk(self.G, za.unsqueeze(0), label, end_label, steps)  # (1, S, C, H, W)
        else:  # z moves, and the class too with an end class
            walks = interpolate(self.G, za.unsqueeze(0), zb.unsqueeze(0), steps, method, label, end_label)
        answer = _with_class(
            {"images": [_png(im) for im in walks[0]], "picture": _data_url(walk_figure(walks)), "gif": _gif(walk_frames(walks))}, label
        )
        return answer if end_label is None else {**answer, "end_class": end_label}

    def classes(self, base: dict) -> dict:
        """One z drawn in every class of a conditional model: the style kept, the class changed."""
        c = self.config
        if not c.conditional:
            raise ConfigError("this model is unconditional: it has no classes to draw a z in")
        if c.num_classes > self.limits.max_samples:
            raise ConfigError(f"this model has {c.num_classes} classes, more than the {self.limits.max_samples} images one request may draw")
        if base.get("class") is not None:
            self.label(base["class"])  # the reference's own class is not used, but a wrong one is still an error
        z = self.resolve(base).expand(c.num_classes, -1)  # (K, D): the same z in each row
        images = generate(self.G, z, torch.arange(c.num_classes))
        names = [c.class_name(k) for k in range(c.num_classes)]
        cell = {k: v for k, v in base.items() if v is not None and k != "class"}
        return {
            "images": [_png(im) for im in images],
            "classes": names,
            "latents": [{**cell, "class": k} for k in range(c.num_classes)],
            "picture": _data_url(labelled_grid(images, names, nrow=min(c.num_classes, 10))),
        }

    def arithmetic(self, a: list[dict], b: list[dict], c: list[dict], noise: float = 0.25, noise_seed: int = 0, label: int | None = None) -> dict:
        """mean(a) - mean(b) + mean(c) with the paper's 3x3 noise grid around the result.

        On a conditional model the arithmetic is on z (the style), and every image of it, the
        exemplars' too, is drawn in class `label` (default: the one class the exemplars carry)."""
        groups: list[torch.Tensor] = []
        for name, refs in (("A", a), ("B", b), ("C", c)):
            if not 1 <= len(refs) <= self.limits.max_group:
                raise ConfigError(f"group {name} needs 1 to {self.limits.max_group} samples, got {len(refs)}")
            groups.append(torch.stack([self.resolve(r) for r in refs]))
        _check(noise, 0, self.limits.max_noise, "noise")
        _check(noise_seed, 0, MAX_SEED, "noise seed")
        label = self.label(label, [*a, *b, *c])
        group_a, group_b, group_c = groups
        result = vector_arithmetic(self.G, group_a, group_b, group_c, noise_scale=noise, seed=noise_seed, label=label)
        return _with_class(
            {
                "result": _png(result.result),
                "latent": _z_ref(result.z_result, label),
                "grid": _data_url(grid_image(result.grid, nrow=result.grid_size)),
                "picture": _data_url(arithmetic_figure(result)),
            },
            label,
        )

    def invert(self, data: bytes, restarts: int = 4, steps: int = 300, seed: int = 0, label: int | None = None) -> dict:
        """The z whose image best matches an uploaded image file (any format Pillow reads).

        A conditional model searches in class `label`, or, without one, tries the same starts under
        every class and keeps the class that fits best (`latent.invert`); its answer says which."""
        _check(len(data), 1, self.limits.max_upload_bytes, "the upload size in bytes")
        _check(restarts, 1, self.limits.max_invert_restarts, "restarts")
        _check(steps, 1, self.limits.max_invert_steps, "steps")
        _check(seed, 0, MAX_SEED, "seed")
        c = self.config
        infer = c.conditional and label is None
        if label is not None:
            label = self.label(label)  # checked: in range, and only for a conditional model
        most = self.limits.max_invert_batch // max(c.num_classes, 1)
        if infer and most == 0:
            raise ConfigError(
                f"this model has {c.num_classes} classes, too many to try in one inversion (at most {self.limits.max_invert_batch}): give a class"
            )
        if infer and restarts > most:
            raise ConfigError(
                f"inferring the class tries all {c.num_classes} classes: restarts x classes must be at most "
                f"{self.limits.max_invert_batch}, so use at most {most} restarts or give a class"
            )
        try:
            pixels = decode_image(data, c.image_size, c.channels, max_pixels=self.limits.max_upload_pixels)
        except DecodeError as exc:
            raise ConfigError(f"the upload could not be read as an image ({exc})") from None
        target = to_unit_range(torch.from_numpy(pixels.copy()))  # (C, H, W) in [-1, 1]
        result = invert(self.G, target, restarts=restarts, steps=steps, seed=seed, label=label)
        answer = {
            "target": _png(target),
            "image": _png(result.image),
            "latent": _z_ref(result.z, result.label),
            "mse": result.mse,
            "psnr": result.psnr,
            "picture": _data_url(inversion_figure(target, result)),
        }
        if result.label is None:
            return answer
        answer.update({"class": result.label, "class_name": c.class_name(result.label), "inferred": result.inferred})
        if result.inferred:  # the best error under each class, by class index
            answer["class_mse"] = [result.class_mse[k] for k in range(c.num_classes)]
        return answer

    def directions(self, label: int | None = None) -> PrincipalDirections:
        """The sliders' principal directions (of class `label`'s first feature map for a conditional
        model, whose class moves that map), fitted on first use and then kept."""
        if label not in self._directions:
            components = min(self.limits.directions, self.config.z_dim)
            self._directions[label] = principal_directions(self.G, components=components, label=label)
        return self._directions[label]

    def direction_info(self, label: int | None = None) -> dict:
        label = self.label(label)
        d = self.directions(label)
        answer = {"count": d.directions.shape[0], "explained": [float(v) for v in d.explained], "samples": d.samples}
        return _with_class(answer, label)

    def slide(self, base: dict, amounts: list[float], label: int | None = None) -> dict:
        """The image of `base` moved by `amounts` prior standard deviations along the principal directions
        (in class `label`, or the class `base` carries)."""
        label = self.label(label, [base])
        d = self.directions(label)
        if len(amounts) != d.directions.shape[0]:
            raise ConfigError(f"expected {d.directions.shape[0]} amounts, one per direction, got {len(amounts)}")
        for a in amounts:
            _check(a, -self.limits.max_slide, self.limits.max_slide, "a slider amount")
        z = move_along(self.resolve(base), d.directions, amounts, self.config.prior)
        image = generate(self.G, z.unsqueeze(0), label)[0]
        return _with_class({"image": _png(image), "latent": _z_ref(z, label)}, label)
