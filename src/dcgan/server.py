"""`dcgan serve`: a local web page for exploring a trained generator.

Two layers:

* `Explorer` holds the generator and does the work: numbered sample grids,
  walks, vector arithmetic with its noise grid, inversion of an uploaded image
  and moves along principal directions. Every method takes plain values,
  checks them against `ServeLimits` (a `ConfigError` with one line when they
  are out of bounds) and returns a JSON-ready dict whose pictures are PNG data
  URLs. Nothing here touches the filesystem.
* `create_app` puts a FastAPI application over it: strict request types, a
  body-size limit, a Host check, one request on the model at a time, and every
  failure answered as `{"error": "one line"}` with a 4xx (or 503 when busy).

A latent point travels between page and server as a *reference*: either a
sheet cell `{"seed": S, "n": N, "index": i}` (index i of the `N` vectors drawn
with seed `S`, the numbering of `dcgan sheet --seed S -n N`) or an explicit
vector `{"z": [...]}` (an inverted image, a slider position).

A class-conditional model draws each z in a class. Every request that draws
takes `"class"` (an index; `/api/info` lists the names), and the references the
server hands out carry the class they were drawn in (`{"seed", "n", "index",
"class"}`, `{"z", "class"}`), so a reference sent back alone draws the same
image. A request's `"class"` wins over its references': the page sends the
class its selector shows, and the z keeps the style. A walk's `"end_class"`
moves the class input along the walk too (from a point to itself: a walk
across classes at a fixed z), and `/api/classes` draws one z in every class.
An unconditional model refuses any class, and its answers are those it always gave.
"""

# No `from __future__ import annotations`: FastAPI reads the request models defined inside
# create_app from the endpoint annotations, which must therefore be real classes, not strings.
import base64
import io
import socket
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Iterator, Literal

import torch
from PIL import Image

from .checkpoint import Checkpoint
from .conditioning import resolve_class
from .errors import ConfigError, DCGANError
from .figures import arithmetic_figure, inversion_figure, labelled_grid, numbered_sheet, walk_figure, walk_frames
from .imagefiles import DecodeError, decode_image
from .imaging import grid_image, tensor_to_pil
from .latent import (
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
from .sampling import MAX_SEED, generate

__all__ = ["ServeLimits", "Explorer", "ModelGate", "Busy", "create_app", "bind_socket", "serve", "running", "LOOPBACK_HOSTS"]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")  # a Host header writes IPv6 in brackets
JSON_BODY_LIMIT = 1 << 20  # bytes of a JSON request: a few thousand numbers at most are ever needed


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

    def label(self, requested: int | None = None, refs: list[dict] = ()) -> int | None:
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
        return _with_class({
            "seed": seed,
            "n": n,
            "images": [_png(im) for im in images],
            "latents": [_with_class({"seed": seed, "n": n, "index": i}, label) for i in range(n)],
            "picture": _data_url(numbered_sheet(images)),
        }, label)

    def walk(self, a: dict, b: dict, steps: int = 10, method: str = "spherical", label: int | None = None,
             end_label: int | None = None) -> dict:
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
            walks = class_walk(self.G, za.unsqueeze(0), label, end_label, steps)  # (1, S, C, H, W)
        else:  # z moves, and the class too with an end class
            walks = interpolate(self.G, za.unsqueeze(0), zb.unsqueeze(0), steps, method, label, end_label)
        answer = _with_class({
            "images": [_png(im) for im in walks[0]],
            "picture": _data_url(walk_figure(walks)),
            "gif": _gif(walk_frames(walks)),
        }, label)
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

    def arithmetic(self, a: list[dict], b: list[dict], c: list[dict], noise: float = 0.25, noise_seed: int = 0,
                   label: int | None = None) -> dict:
        """mean(a) - mean(b) + mean(c) with the paper's 3x3 noise grid around the result.

        On a conditional model the arithmetic is on z (the style), and every image of it, the
        exemplars' too, is drawn in class `label` (default: the one class the exemplars carry)."""
        groups = []
        for name, refs in (("A", a), ("B", b), ("C", c)):
            if not 1 <= len(refs) <= self.limits.max_group:
                raise ConfigError(f"group {name} needs 1 to {self.limits.max_group} samples, got {len(refs)}")
            groups.append(torch.stack([self.resolve(r) for r in refs]))
        _check(noise, 0, self.limits.max_noise, "noise")
        _check(noise_seed, 0, MAX_SEED, "noise seed")
        label = self.label(label, [*a, *b, *c])
        result = vector_arithmetic(self.G, *groups, noise_scale=noise, seed=noise_seed, label=label)
        return _with_class({
            "result": _png(result.result),
            "latent": _z_ref(result.z_result, label),
            "grid": _data_url(grid_image(result.grid, nrow=result.grid_size)),
            "picture": _data_url(arithmetic_figure(result)),
        }, label)

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
            raise ConfigError(f"this model has {c.num_classes} classes, too many to try in one inversion "
                              f"(at most {self.limits.max_invert_batch}): give a class")
        if infer and restarts > most:
            raise ConfigError(f"inferring the class tries all {c.num_classes} classes: restarts x classes must be at most "
                              f"{self.limits.max_invert_batch}, so use at most {most} restarts or give a class")
        try:
            pixels = decode_image(data, c.image_size, c.channels, max_pixels=self.limits.max_upload_pixels)
        except DecodeError as exc:
            raise ConfigError(f"the upload could not be read as an image ({exc})") from None
        target = torch.from_numpy(pixels.copy()).float().div(127.5).sub(1)  # (C, H, W) in [-1, 1]
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


# --------------------------------------------------------------------------- #
# The web application
# --------------------------------------------------------------------------- #
def create_app(explorer: Explorer, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS):
    """The FastAPI application: the page at `/`, its files at `/static`, the JSON API under `/api`.

    `allowed_hosts` are the Host headers accepted (None: any). Bound to the loopback
    interface, only local names are accepted, so a web page elsewhere cannot reach
    the server through a DNS name that points at 127.0.0.1 (DNS rebinding).
    """
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    limits = explorer.limits
    gate = ModelGate(limits.max_waiting, limits.wait_timeout_s)
    web = resources.files("dcgan") / "web"

    # Request bodies. Types are strict (a seed of 1.5 or "3" is refused, not rounded or parsed);
    # the bounds that `dcgan serve` lets the user set are checked by the Explorer.
    Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]
    Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
    # "class" is a Python keyword: the field is class_, spelled "class" in JSON. Its range is the Explorer's to check.
    Class = Annotated[StrictInt | None, Field(alias="class")]

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class LatentRef(Body):
        seed: Seed | None = None
        n: StrictInt | None = None
        index: StrictInt | None = None
        z: Annotated[list[Number], Field(max_length=4096)] | None = None
        class_: Class = None  # the class the point was drawn in (a conditional model)

        @model_validator(mode="after")
        def _one_form(self):
            cell = [v is not None for v in (self.seed, self.n, self.index)]
            if (self.z is not None) == any(cell) or (any(cell) and not all(cell)):
                raise ValueError('a latent point is either {"seed", "n", "index"} (a sample of a grid) or {"z": [...]}')
            return self

    Group = Annotated[list[LatentRef], Field(max_length=1024)]

    class SheetRequest(Body):
        seed: Seed
        n: StrictInt = 64
        class_: Class = None

    class WalkRequest(Body):
        a: LatentRef
        b: LatentRef
        steps: StrictInt = 10
        method: Literal["spherical", "linear"] = "spherical"
        class_: Class = None
        end_class: StrictInt | None = None  # the class input moves from "class" to it along the walk

    class ArithmeticRequest(Body):
        a: Group
        b: Group
        c: Group
        noise: Number = 0.25
        noise_seed: Seed = 0
        class_: Class = None

    class SlideRequest(Body):
        base: LatentRef
        amounts: Annotated[list[Number], Field(max_length=4096)]
        class_: Class = None

    class ClassesRequest(Body):
        base: LatentRef

    def ref(r: LatentRef) -> dict:  # {"seed", "n", "index", "z", "class"}
        return r.model_dump(by_alias=True)

    app = FastAPI(title="dcgan explorer", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")

    # Errors: one line each, as {"error": ...} -------------------------------------------
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = first.get("msg", "invalid request").removeprefix("Value error, ")
        if first.get("type") == "json_invalid":
            return _error(400, "the request body is not valid JSON")
        return _error(422, f"{where}: {message}" if where else message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(DCGANError)
    async def _user(request: Request, exc: DCGANError):
        return _error(400, str(exc).splitlines()[0])

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy):
        return _error(503, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # a bug: logged with its traceback by the server, one line here
        return _error(500, f"internal error ({type(exc).__name__}); the server keeps running")

    def on_model(fn, *args, **kwargs):
        with gate():
            return fn(*args, **kwargs)

    # The page ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(web / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    # The API ----------------------------------------------------------------------------
    @app.get("/api/info")
    def info() -> dict:
        return explorer.info()

    @app.post("/api/sheet")
    def sheet(req: SheetRequest) -> dict:
        return on_model(explorer.sheet, req.seed, req.n, req.class_)

    @app.post("/api/walk")
    def walk(req: WalkRequest) -> dict:
        return on_model(explorer.walk, ref(req.a), ref(req.b), req.steps, req.method, req.class_, req.end_class)

    @app.post("/api/classes")
    def classes(req: ClassesRequest) -> dict:
        return on_model(explorer.classes, ref(req.base))

    @app.post("/api/arithmetic")
    def arithmetic(req: ArithmeticRequest) -> dict:
        groups = [[ref(r) for r in g] for g in (req.a, req.b, req.c)]
        return on_model(explorer.arithmetic, *groups, noise=req.noise, noise_seed=req.noise_seed, label=req.class_)

    @app.post("/api/invert")
    async def invert_upload(
        request: Request,
        restarts: int = 4,  # query values arrive as text: plain int accepts "8" and refuses "1.5"
        steps: int = 300,
        seed: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0,
        class_: Annotated[int | None, Query(alias="class")] = None,  # none on a conditional model: inferred
    ) -> dict:
        data = await request.body()  # bounded by the body-size middleware below
        if not data:
            raise HTTPException(400, "send the image file as the request body")
        return await run_in_threadpool(on_model, explorer.invert, data, restarts, steps, seed, class_)

    @app.get("/api/directions")
    def directions(class_: Annotated[int | None, Query(alias="class")] = None) -> dict:
        return on_model(explorer.direction_info, class_)

    @app.post("/api/slide")
    def slide(req: SlideRequest) -> dict:
        return on_model(explorer.slide, ref(req.base), req.amounts, req.class_)

    # Middleware, plain ASGI (the last added runs first) ----------------------------------
    app.add_middleware(SecurityHeaders)
    upload_limit = limits.max_upload_bytes
    app.add_middleware(BodyLimit, limit_for=lambda path: upload_limit if path == "/api/invert" else JSON_BODY_LIMIT)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


class SecurityHeaders:
    """ASGI middleware adding the page's security headers to every response.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware reads
    request bodies in a task of its own, where BodyLimit's 413 would escape the handlers.
    """

    HEADERS = [
        # The page loads nothing from elsewhere; its pictures are data URLs.
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                     b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(event):
            if event["type"] == "http.response.start":
                event = {**event, "headers": list(event.get("headers", [])) + self.HEADERS}
            await send(event)

        return await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over a size limit with a 413, counting the bytes as they
    arrive, so neither a false Content-Length nor a chunked upload gets more into memory."""

    def __init__(self, app, limit_for):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        limit = self.limit_for(scope["path"])
        message = f"the request body is over the {limit:,}-byte limit"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise HTTPException(413, message)  # answered by the application's HTTPException handler
            return event

        return await self.app(scope, limited_receive, send)


# --------------------------------------------------------------------------- #
# Running it
# --------------------------------------------------------------------------- #
def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port), or a ConfigError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "already in use (pick another with --port, or --port 0 for any free one)" if exc.errno == 98 else exc.strerror
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _uvicorn(app, verbose: bool = False):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose, lifespan="off"))


def serve(app, sock: socket.socket, verbose: bool = False):
    """Run `app` on a bound socket until Ctrl-C (uvicorn)."""
    server = _uvicorn(app, verbose)
    server.run(sockets=[sock])
    return server


@contextmanager
def running(app, sock: socket.socket, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` on `sock` from a background thread while the block runs; yields the page's URL.

    For tests, benchmarks and scripts that drive the page from the same process.
    """
    server = _uvicorn(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    waited = threading.Event()
    for _ in range(int(start_timeout_s / 0.02)):
        if server.started or not thread.is_alive():
            break
        waited.wait(0.02)
    if not server.started:
        raise RuntimeError("the explorer's server did not start")
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
