"""`dcgan serve`: a local web page to explore a generator (the server itself is dcgan.server)."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from importlib.util import find_spec

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..server import LOOPBACK_HOSTS, Explorer, ServeLimits, bind_socket, create_app, is_loopback, serve, url_of
from .common import Command, _add_device, _add_raw_g, _checked, _device, _positive_float

SERVE_EXAMPLES = """examples:
  dcgan serve runs/mnist                        # open http://127.0.0.1:8000/ in a browser
  dcgan serve runs/mnist --port 0 --open        # any free port, and open the page
  dcgan serve runs/mnist/checkpoints/best.safetensors --max-samples 100

The page: a grid of samples from a seed (new seed, grid size), a click on two samples walks
between them, groups A, B, C for vector arithmetic with the paper's 3x3 noise grid, an upload
box to invert your own image, sliders along principal directions of z, and a download link
under every picture. For a class-conditional model (dcgan train --conditional) a class
selector draws the samples, walks, arithmetic and sliders in one class, a click shows a
sample in every class and walks across classes at its z, and inversion can infer the class.
Only this machine can reach it unless --host says otherwise.
"""


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    d = ServeLimits()
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint), a checkpoint or an exported generator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument(
        "--port",
        type=_checked(int, lambda v: 0 <= v <= 65535, "a port from 0 to 65535"),
        default=8000,
        help="port (default 8000; 0 picks a free one)",
    )
    _add_device(p)
    _add_raw_g(p)
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--verbose", action="store_true", help="log every request")
    limits = p.add_argument_group("limits of one request")
    limits.add_argument(
        "--max-samples",
        type=_checked(int, lambda v: 1 <= v <= 4096, "a whole number from 1 to 4096"),
        default=d.max_samples,
        help=f"samples on one grid (default {d.max_samples})",
    )
    limits.add_argument(
        "--max-upload-mb",
        type=_positive_float,
        default=d.max_upload_bytes / 2**20,
        help=f"size of an uploaded image in MiB (default {d.max_upload_bytes / 2**20:g})",
    )
    limits.add_argument(
        "--max-upload-megapixels",
        type=_positive_float,
        default=d.max_upload_pixels / 1e6,
        help=f"pixels of an uploaded image, in millions (default {d.max_upload_pixels / 1e6:g})",
    )
    limits.add_argument(
        "--max-invert-steps",
        type=_checked(int, lambda v: 1 <= v <= 100_000, "a whole number from 1 to 100000"),
        default=d.max_invert_steps,
        help=f"Adam steps of one inversion (default {d.max_invert_steps})",
    )
    limits.add_argument(
        "--directions",
        type=_checked(int, lambda v: 1 <= v <= 64, "a whole number from 1 to 64"),
        default=d.directions,
        help=f"principal directions offered as sliders (default {d.directions})",
    )


def _run_serve(args: argparse.Namespace) -> int:
    missing = [name for name in ("fastapi", "uvicorn") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"dcgan serve needs {' and '.join(missing)}: pip install 'dcgan[serve]'")
    ckpt = load_checkpoint(args.checkpoint)
    limits = ServeLimits(
        max_samples=args.max_samples,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_upload_pixels=int(args.max_upload_megapixels * 1e6),
        max_invert_steps=args.max_invert_steps,
        directions=args.directions,
    )
    explorer = Explorer(ckpt, _device(args.device), limits, raw=args.raw_g)
    local = is_loopback(args.host)
    sock = bind_socket(args.host, args.port)
    url = url_of(sock)
    mc = ckpt.model_config
    classes = f"; class-conditional ({mc.conditioning}): {mc.num_classes} classes" if mc.conditional else ""
    print(f"serving {ckpt.path} (step {ckpt.step}, {mc.image_size}x{mc.image_size}x{mc.channels}) on {next(explorer.G.parameters()).device}{classes}")
    if local:
        print(f"open {url} in a browser; Ctrl-C stops the server", flush=True)
    else:
        port = sock.getsockname()[1]
        print(f"listening on {url} (from this machine: http://127.0.0.1:{port}/); Ctrl-C stops the server", flush=True)
        print(f"dcgan serve: warning: --host {args.host} lets other machines reach this server, which has no login", file=sys.stderr)
    if args.open:
        webbrowser.open(url if local else f"http://127.0.0.1:{sock.getsockname()[1]}/")
    try:
        serve(create_app(explorer, allowed_hosts=LOOPBACK_HOSTS if local else None), sock, verbose=args.verbose)
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again: stopping is what was asked
        pass
    finally:
        sock.close()
    print("server stopped")
    return 0


COMMANDS = {
    "serve": Command(
        "a local web page to explore a generator: samples, walks, arithmetic, inversion, sliders", SERVE_EXAMPLES, _add_serve_args, _run_serve
    )
}
