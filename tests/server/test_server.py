"""`dcgan serve`: the Explorer's answers, the HTTP API's validation and limits, and a real server on a socket."""

import base64
import io
import json
import threading
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient  # noqa: E402

from dcgan.checkpoint import load_checkpoint  # noqa: E402
from dcgan.data import load_dataset  # noqa: E402
from dcgan.errors import ConfigError  # noqa: E402
from dcgan.explore.latent import latent_sheet, vector_arithmetic  # noqa: E402
from dcgan.imaging import to_uint8  # noqa: E402
from dcgan.sampling import generate  # noqa: E402
from dcgan.server import Busy, Explorer, ModelGate, ServeLimits, bind_socket, create_app, running  # noqa: E402
from dcgan.training import Trainer  # noqa: E402

from conftest import TINY  # noqa: E402

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny G/D trained for a few steps on 16x16 digits: its latest checkpoint."""
    run = tmp_path_factory.mktemp("serve") / "run"
    Trainer.from_options(run_dir=run, data="digits", progress=False, steps=40, seed=0, batch_size=64, **TINY).train()
    return load_checkpoint(run)


@pytest.fixture(scope="module")
def explorer(tiny_ckpt):
    return Explorer(tiny_ckpt, limits=ServeLimits(max_samples=64, max_upload_bytes=200_000, max_upload_pixels=1_000_000))


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer), base_url=LOCAL)


def decode(data_url: str) -> Image.Image:
    header, payload = data_url.split(",", 1)
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def pixels(data_url: str) -> torch.Tensor:
    """A grey data-URL image as a (1, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(decode(data_url).convert("L"))).unsqueeze(0)


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def ref(i: int, seed: int = 3, n: int = 16) -> dict:
    return {"seed": seed, "n": n, "index": i}


# --------------------------------------------------------------------------- #
# The page
# --------------------------------------------------------------------------- #
def test_page_and_its_files_are_served_with_a_strict_content_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert client.get("/static/../server.py").status_code == 404


def test_info_describes_the_model_and_its_limits(client, tiny_ckpt):
    info = client.get("/api/info").json()
    assert (info["image_size"], info["channels"], info["z_dim"]) == (16, 1, 8)
    assert info["step"] == tiny_ckpt.step == 40 and info["data"] == "digits"
    assert info["limits"]["max_samples"] == 64 and info["directions"] == 8
    assert (info["conditional"], info["classes"], info["conditioning"]) == (False, [], None)


# --------------------------------------------------------------------------- #
# Samples, walks, arithmetic
# --------------------------------------------------------------------------- #
def test_sheet_draws_the_same_samples_as_dcgan_sheet(client, tiny_ckpt):
    answer = client.post("/api/sheet", json={"seed": 5, "n": 9}).json()
    assert len(answer["images"]) == 9 and answer["latents"][4] == {"seed": 5, "n": 9, "index": 4}
    expected = to_uint8(generate(tiny_ckpt.build_generator(), latent_sheet(tiny_ckpt.model_config, 5, 9)))
    for i in (0, 4, 8):
        assert torch.equal(pixels(answer["images"][i]), expected[i])
    assert decode(answer["picture"]).width > 3 * 16  # the numbered sheet, for download
    other = client.post("/api/sheet", json={"seed": 6, "n": 9}).json()
    assert other["images"][0] != answer["images"][0]


def test_walk_runs_between_the_two_clicked_samples(client):
    sheet = client.post("/api/sheet", json={"seed": 3, "n": 16}).json()
    walk = client.post("/api/walk", json={"a": ref(2), "b": ref(7), "steps": 6, "method": "linear"}).json()
    assert len(walk["images"]) == 6
    assert torch.equal(pixels(walk["images"][0]), pixels(sheet["images"][2]))
    assert torch.equal(pixels(walk["images"][-1]), pixels(sheet["images"][7]))
    assert decode(walk["gif"]).format == "GIF" and decode(walk["gif"]).n_frames >= 6


def test_arithmetic_returns_images_of_the_model_size_and_the_library_result(client, tiny_ckpt):
    body = {"a": [ref(0), ref(1), ref(2)], "b": [ref(3)], "c": [ref(4), ref(5)], "noise": 0.25, "noise_seed": 1}
    answer = client.post("/api/arithmetic", json=body).json()
    assert decode(answer["result"]).size == (16, 16)
    assert decode(answer["grid"]).size == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)  # 3x3 cells with 2-px padding
    sheet = latent_sheet(tiny_ckpt.model_config, 3, 16)
    expected = vector_arithmetic(tiny_ckpt.build_generator(), sheet[0:3], sheet[3:4], sheet[4:6], 0.25, seed=1)
    assert torch.equal(torch.tensor(answer["latent"]["z"]), expected.z_result)  # the z survives JSON exactly
    assert torch.equal(pixels(answer["result"]), to_uint8(expected.result))


def test_an_explicit_z_reference_round_trips_exactly(explorer):
    z = latent_sheet(explorer.config, 3, 16)[5]
    as_json = json.loads(json.dumps({"z": [float(v) for v in z]}))
    assert torch.equal(explorer.resolve(as_json), z)
    assert torch.equal(explorer.resolve(ref(5)), z)


# --------------------------------------------------------------------------- #
# Inversion
# --------------------------------------------------------------------------- #
def test_inverting_an_uploaded_digit_returns_a_usable_z(client, explorer):
    digit = load_dataset("digits", image_size=16).images[0, 0].numpy()  # (16, 16) uint8
    answer = client.post("/api/invert?restarts=2&steps=60&seed=0", content=png_bytes(Image.fromarray(digit).resize((48, 48)))).json()
    assert decode(answer["image"]).size == (16, 16) and answer["psnr"] > 5
    again = generate(explorer.G, torch.tensor(answer["latent"]["z"]).unsqueeze(0))
    assert torch.equal(to_uint8(again[0]), pixels(answer["image"]))  # the returned z makes the returned image
    walk = client.post("/api/walk", json={"a": answer["latent"], "b": ref(0), "steps": 3})
    assert walk.status_code == 200


@pytest.mark.parametrize(
    "content,query,status,message",
    [
        (b"this is text", "", 400, "cannot identify the image format"),
        (b"", "", 400, "send the image file"),
        ("big-file", "", 413, "200,000-byte limit"),
        ("many-pixels", "", 400, "1,000,000-pixel limit"),
        ("ok", "?steps=1.5", 422, "steps"),
        ("ok", "?steps=100000", 400, "steps must be from 1 to 1000"),
        ("ok", "?restarts=0", 400, "restarts must be from 1 to 16"),
        ("ok", "?seed=-3", 422, "seed"),
    ],
)
def test_bad_uploads_get_a_4xx_with_one_line(client, content, query, status, message):
    content = {
        "big-file": bytes(300_000),
        "many-pixels": png_bytes(Image.new("L", (2000, 1000))),  # 2 megapixels in a small file
        "ok": png_bytes(Image.new("L", (20, 20), 200)),
    }.get(content, content)
    r = client.post(f"/api/invert{query}", content=content)
    assert r.status_code == status and message in r.json()["error"] and "\n" not in r.json()["error"]


def test_a_chunked_upload_is_cut_off_at_the_limit(client):
    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(100):
            yield bytes(10_000)

    r = client.post("/api/invert", content=chunks())
    assert r.status_code == 413 and "byte limit" in r.json()["error"]


# --------------------------------------------------------------------------- #
# Principal directions
# --------------------------------------------------------------------------- #
def test_sliders_move_the_image_and_zero_gives_the_sample_back(client):
    info = client.get("/api/directions").json()
    k = info["count"]
    assert k == 8 and len(info["explained"]) == k and info["explained"] == sorted(info["explained"], reverse=True)
    sheet = client.post("/api/sheet", json={"seed": 3, "n": 16}).json()
    still = client.post("/api/slide", json={"base": ref(1), "amounts": [0.0] * k}).json()
    assert torch.equal(pixels(still["image"]), pixels(sheet["images"][1]))
    moved = client.post("/api/slide", json={"base": ref(1), "amounts": [3.0] + [0.0] * (k - 1)}).json()
    assert (pixels(moved["image"]).int() - pixels(still["image"]).int()).abs().sum() > 0
    assert torch.tensor(moved["latent"]["z"]).sub(torch.tensor(still["latent"]["z"])).norm().item() == pytest.approx(3.0, rel=1e-5)


# --------------------------------------------------------------------------- #
# Validation: every bad request is a 4xx with one line, and the server stays up
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "path,body,status,message",
    [
        ("/api/sheet", {"seed": -1}, 422, "seed: Input should be greater than or equal to 0"),
        ("/api/sheet", {"seed": 1.5}, 422, "seed: Input should be a valid integer"),
        ("/api/sheet", {"seed": "7"}, 422, "seed: Input should be a valid integer"),
        ("/api/sheet", {"seed": 2**32}, 422, "seed"),
        ("/api/sheet", {"seed": 0, "n": 10_000}, 400, "n must be from 1 to 64"),
        ("/api/sheet", {"seed": 0, "n": 0}, 400, "n must be from 1 to 64"),
        ("/api/sheet", {"seed": 0, "colour": 1}, 422, "colour: Extra inputs are not permitted"),
        ("/api/walk", {"a": ref(99), "b": ref(0)}, 400, "index 99 is outside the sheet"),
        ("/api/walk", {"a": {"seed": 3, "n": 16}, "b": ref(0)}, 422, "a latent point is either"),
        ("/api/walk", {"a": {**ref(1), "z": [0.0] * 8}, "b": ref(0)}, 422, "a latent point is either"),
        ("/api/walk", {"a": {"z": [0.0] * 7}, "b": ref(0)}, 400, "z has 7 numbers but this generator takes 8"),
        ("/api/walk", {"a": {"z": [1e6] * 8}, "b": ref(0)}, 400, "finite numbers within"),
        ("/api/walk", {"a": ref(1), "b": ref(0), "steps": 1000}, 400, "steps must be from 2 to 32"),
        ("/api/walk", {"a": ref(1), "b": ref(0), "method": "cubic"}, 422, "method"),
        ("/api/arithmetic", {"a": [], "b": [ref(0)], "c": [ref(1)]}, 400, "group A needs 1 to 16 samples"),
        ("/api/arithmetic", {"a": [ref(0)], "b": [ref(0)], "c": [ref(1)], "noise": 50.0}, 400, "noise must be from 0 to 2"),
        ("/api/slide", {"base": ref(0), "amounts": [9.0] + [0.0] * 7}, 400, "a slider amount must be from -5 to 5"),
        ("/api/slide", {"base": ref(0), "amounts": [1.0]}, 400, "expected 8 amounts"),
        # An unconditional model has no classes: a class anywhere is refused, and so is a walk across them.
        ("/api/sheet", {"seed": 0, "class": 3}, 400, "this model is unconditional: it has no classes"),
        ("/api/walk", {"a": {**ref(1), "class": 0}, "b": ref(0)}, 400, "this model is unconditional"),
        ("/api/walk", {"a": ref(1), "b": ref(1), "end_class": 2}, 400, "this model is unconditional"),
        ("/api/classes", {"base": ref(0)}, 400, "this model is unconditional"),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line(client, path, body, status, message):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error
    assert client.get("/api/info").status_code == 200  # still serving


def test_malformed_json_nan_and_oversized_bodies(client):
    bad_json = client.post("/api/sheet", content=b"{seed: ", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    nan = client.post(
        "/api/walk",
        content=b'{"a": {"z": [NaN, 0, 0, 0, 0, 0, 0, 0]}, "b": {"z": [0, 0, 0, 0, 0, 0, 0, 0]}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and "finite" in nan.json()["error"]
    huge = client.post("/api/sheet", content=b" " * (2 << 20), headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_only_local_host_names_are_answered(explorer):
    elsewhere = TestClient(create_app(explorer), base_url="http://attacker.example:8000")
    assert elsewhere.get("/api/info").status_code == 400  # DNS rebinding: a foreign name pointing at 127.0.0.1
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert TestClient(create_app(explorer), base_url=local).get("/api/info").status_code == 200, local
    anywhere = TestClient(create_app(explorer, allowed_hosts=None), base_url="http://192.0.2.7:8000")
    assert anywhere.get("/api/info").status_code == 200


# --------------------------------------------------------------------------- #
# One request at a time on the model
# --------------------------------------------------------------------------- #
def test_the_gate_runs_one_at_a_time_and_bounds_the_queue():
    gate = ModelGate(max_waiting=1, timeout_s=5)
    inside, release, order = threading.Event(), threading.Event(), []

    def holder():
        with gate():
            order.append("first in")
            inside.set()
            release.wait(5)
        order.append("first out")

    def waiter():
        with gate():
            order.append("second in")

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    inside.wait(5)
    threads.append(threading.Thread(target=waiter))
    threads[1].start()
    for _ in range(100):  # let the waiter take its place in the queue
        if gate._places._value == 0:
            break
        threading.Event().wait(0.01)
    with pytest.raises(Busy, match="busy"):  # one running, one waiting: no third place
        with gate():
            pass
    release.set()
    for t in threads:
        t.join(5)
    assert order == ["first in", "first out", "second in"]
    with pytest.raises(Busy, match="stayed busy"):  # a wait that runs out
        short = ModelGate(max_waiting=1, timeout_s=0.05)
        with short():
            with short():
                pass


def test_a_busy_model_answers_503(tiny_ckpt):
    explorer = Explorer(tiny_ckpt, limits=ServeLimits(max_waiting=0, wait_timeout_s=0.05))
    app = create_app(explorer)
    client = TestClient(app, base_url=LOCAL)
    started, release = threading.Event(), threading.Event()
    original = explorer.sheet

    def slow_sheet(*args):
        started.set()
        release.wait(5)
        return original(*args)

    explorer.sheet = slow_sheet
    result = {}
    t = threading.Thread(target=lambda: result.update(r=client.post("/api/sheet", json={"seed": 0, "n": 4})))
    t.start()
    started.wait(5)
    busy = client.post("/api/walk", json={"a": ref(0), "b": ref(1)})
    release.set()
    t.join(5)
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert result["r"].status_code == 200


def test_explorer_limits_are_checked_without_http(explorer):
    with pytest.raises(ConfigError, match="n must be from 1 to 64"):
        explorer.sheet(0, 65)
    with pytest.raises(ConfigError, match="upload could not be read"):
        explorer.invert(b"GIF89a broken", steps=1)
    with pytest.raises(ConfigError, match="this model is unconditional"):
        explorer.invert(png_bytes(Image.new("L", (16, 16))), steps=1, label=0)


# --------------------------------------------------------------------------- #
# A real server on a socket
# --------------------------------------------------------------------------- #
def test_a_real_server_answers_on_its_socket_and_a_taken_port_is_one_line(explorer):
    with bind_socket("127.0.0.1", 0) as sock, running(create_app(explorer), sock) as url:
        port = sock.getsockname()[1]
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"{url}api/info", timeout=10) as r:
            assert json.load(r)["z_dim"] == 8
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: already in use"):
            bind_socket("127.0.0.1", port)


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #
def test_dcgan_serve_runs_until_ctrl_c(tiny_ckpt):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "serve", str(tiny_ckpt.path), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith(f"serving {tiny_ckpt.path} (step 40, 16x16x1)"), lines
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            assert json.load(r)["image_size"] == 16
        with urllib.request.urlopen(url, timeout=30) as r:
            assert b"dcgan explorer" in r.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "server stopped" in out and "Traceback" not in err


def _exit_code(argv: list[str]) -> int:
    """`dcgan ARGV`'s exit status, whether argparse exits or the command returns."""
    from dcgan.cli import main

    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    "argv,message",
    [
        (["serve", "no/such/run"], "does not exist"),
        (["serve", "CKPT", "--port", "70000"], "expected a port from 0 to 65535"),
        (["serve", "CKPT", "--host", "no-such-host.invalid"], "--host no-such-host.invalid"),
        (["serve", "CKPT", "--max-samples", "0"], "expected a whole number from 1 to 4096"),
    ],
)
def test_dcgan_serve_mistakes_are_one_line(tiny_ckpt, capsys, argv, message):
    assert _exit_code([str(tiny_ckpt.path) if a == "CKPT" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_dcgan_serve_on_a_taken_port_is_one_line(tiny_ckpt, capsys):
    taken = bind_socket("127.0.0.1", 0)
    try:
        assert _exit_code(["serve", str(tiny_ckpt.path), "--port", str(taken.getsockname()[1])]) == 2
    finally:
        taken.close()
    assert "already in use (pick another with --port" in capsys.readouterr().err
