"""`dcgan serve`: a local web page for exploring a trained generator.

Two layers, and a runner:

* `Explorer` (`explorer.py`) holds the generator and does the work: numbered sample grids,
  walks, vector arithmetic with its noise grid, inversion of an uploaded image
  and moves along principal directions. Every method takes plain values,
  checks them against `ServeLimits` (a `ConfigError` with one line when they
  are out of bounds) and returns a JSON-ready dict whose pictures are PNG data
  URLs. Nothing here touches the filesystem.
* `create_app` (`app.py`) puts a FastAPI application over it: strict request types, a
  body-size limit, a Host check, one request on the model at a time, and every
  failure answered as `{"error": "one line"}` with a 4xx (or 503 when busy).
* `bind_socket`, `serve` and `running` (`run.py`) run that application with uvicorn.

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

from .app import JSON_BODY_LIMIT, LOOPBACK_HOSTS, BodyLimit, SecurityHeaders, create_app
from .explorer import Busy, Explorer, ModelGate, ServeLimits
from .run import bind_socket, is_loopback, running, serve, url_of

__all__ = [
    "ServeLimits",
    "Explorer",
    "ModelGate",
    "Busy",
    "create_app",
    "bind_socket",
    "serve",
    "running",
    "LOOPBACK_HOSTS",
    # public before the split, though not listed: kept importable from dcgan.server
    "JSON_BODY_LIMIT",
    "SecurityHeaders",
    "BodyLimit",
    "url_of",
    "is_loopback",
]
