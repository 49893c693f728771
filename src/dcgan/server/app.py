"""The web application of `dcgan serve`: `create_app` puts FastAPI over an `Explorer`.

Strict request types, a body-size limit, a Host check, one request on the model
at a time, and every failure answered as `{"error": "one line"}` with a 4xx (or
503 when busy). FastAPI is imported inside `create_app` only, so the rest of
`dcgan` (and this module) imports without it.
"""

# No `from __future__ import annotations`: FastAPI reads the request models (server/bodies.py) from the
# endpoint annotations, which must therefore be real classes, not strings.
from importlib import resources
from typing import Annotated

from ..errors import DCGANError
from ..sampling import MAX_SEED
from .explorer import Busy, Explorer, ModelGate

__all__ = ["create_app", "SecurityHeaders", "BodyLimit", "LOOPBACK_HOSTS", "JSON_BODY_LIMIT"]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")  # a Host header writes IPv6 in brackets
JSON_BODY_LIMIT = 1 << 20  # bytes of a JSON request: a few thousand numbers at most are ever needed


# --------------------------------------------------------------------------- #
# The web application
# --------------------------------------------------------------------------- #
def create_app(explorer: Explorer, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS):
    """The FastAPI application: the page at `/`, its files at `/static`, the JSON API under `/api`.

    `allowed_hosts` are the Host headers accepted (None: any). Bound to the loopback
    interface, only local names are accepted, so a web page elsewhere cannot reach
    the server through a DNS name that points at 127.0.0.1 (DNS rebinding).
    """
    from fastapi import FastAPI
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    limits = explorer.limits
    web = resources.files("dcgan") / "web"
    app = FastAPI(title="dcgan explorer", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(web / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(web)), name="static")
    _add_api(app, explorer, ModelGate(limits.max_waiting, limits.wait_timeout_s))

    # Middleware, plain ASGI (the last added runs first)
    app.add_middleware(SecurityHeaders)
    upload_limit = limits.max_upload_bytes
    app.add_middleware(BodyLimit, limit_for=lambda path: upload_limit if path == "/api/invert" else JSON_BODY_LIMIT)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


def _add_error_handlers(app) -> None:
    """Every failure answered as {"error": "one line"}: 400/422 for a bad request, 503 when busy, 500 for a bug."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

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


def _add_api(app, explorer: Explorer, gate: ModelGate) -> None:
    """The JSON API under /api: each call on the model waits for the gate (one request on the model at a time)."""
    from fastapi import Query, Request
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from .bodies import ArithmeticRequest, ClassesRequest, SheetRequest, SlideRequest, WalkRequest

    def on_model(fn, *args, **kwargs):
        with gate():
            return fn(*args, **kwargs)

    def ref(r) -> dict:  # a LatentRef as {"seed", "n", "index", "z", "class"}
        return r.model_dump(by_alias=True)

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
        data = await request.body()  # bounded by the body-size middleware
        if not data:
            raise HTTPException(400, "send the image file as the request body")
        return await run_in_threadpool(on_model, explorer.invert, data, restarts, steps, seed, class_)

    @app.get("/api/directions")
    def directions(class_: Annotated[int | None, Query(alias="class")] = None) -> dict:
        return on_model(explorer.direction_info, class_)

    @app.post("/api/slide")
    def slide(req: SlideRequest) -> dict:
        return on_model(explorer.slide, ref(req.base), req.amounts, req.class_)


class SecurityHeaders:
    """ASGI middleware adding the page's security headers to every response.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware reads
    request bodies in a task of its own, where BodyLimit's 413 would escape the handlers.
    """

    HEADERS = [
        # The page loads nothing from elsewhere; its pictures are data URLs.
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
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
