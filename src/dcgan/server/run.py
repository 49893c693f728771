"""Running the explorer's application: a bound socket, uvicorn in the foreground or in a thread."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ConfigError
from .app import LOOPBACK_HOSTS

__all__ = ["bind_socket", "url_of", "serve", "running", "is_loopback"]


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
