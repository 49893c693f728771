"""`dcgan serve` on a class-conditional model: the class in every request, references that carry it,
one z in every class, inversion that infers the class, and one-line errors for a bad class."""

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")
from fastapi.testclient import TestClient  # noqa: E402
from test_server import LOCAL, decode, pixels, png_bytes  # noqa: E402

from dcgan.checkpoint import load_checkpoint  # noqa: E402
from dcgan.explore.latent import latent_sheet, move_along  # noqa: E402
from dcgan.imaging import to_uint8  # noqa: E402
from dcgan.sampling import generate  # noqa: E402
from dcgan.server import Explorer, ServeLimits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(conditional_run):
    return load_checkpoint(conditional_run)


@pytest.fixture(scope="module")
def explorer(ckpt):
    return Explorer(ckpt, limits=ServeLimits(max_samples=64, max_invert_batch=40))


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer), base_url=LOCAL)


def drawn(ckpt, z: torch.Tensor, label: int) -> torch.Tensor:
    """What the checkpoint's G draws for z (n, D) in class `label`, as uint8 (n, C, H, W)."""
    return to_uint8(generate(ckpt.build_generator(), z, label))


def ref(i: int, label: int | None = None, seed: int = 3, n: int = 16) -> dict:
    return {"seed": seed, "n": n, "index": i, **({} if label is None else {"class": label})}


def test_info_lists_the_classes_and_the_method(client, ckpt):
    info = client.get("/api/info").json()
    assert info["conditional"] is True
    assert info["classes"] == [str(k) for k in range(10)]
    assert info["conditioning"] == ckpt.model_config.conditioning in ("projection", "concat")


def test_the_sheet_draws_its_z_in_the_class_and_the_class_changes_the_images(client, ckpt):
    three = client.post("/api/sheet", json={"seed": 5, "n": 9, "class": 3}).json()
    assert three["class"] == 3 and three["latents"][4] == {"seed": 5, "n": 9, "index": 4, "class": 3}
    expected = drawn(ckpt, latent_sheet(ckpt.model_config, 5, 9), 3)
    for i in (0, 4, 8):
        assert torch.equal(pixels(three["images"][i]), expected[i])
    seven = client.post("/api/sheet", json={"seed": 5, "n": 9, "class": 7}).json()
    changed = sum(not torch.equal(pixels(a), pixels(b)) for a, b in zip(three["images"], seven["images"]))
    assert changed >= 7, changed  # the same z in another class is another image
    again = client.post("/api/sheet", json={"seed": 5, "n": 9, "class": 3}).json()
    assert again["images"] == three["images"]


def test_a_reference_carries_its_class_so_it_draws_the_same_image_again(client, explorer):
    sheet = client.post("/api/sheet", json={"seed": 3, "n": 16, "class": 6}).json()
    k = client.get("/api/directions?class=6").json()["count"]
    # The cell as the sheet handed it out, with no class in the request: the cell's class is used.
    still = client.post("/api/slide", json={"base": sheet["latents"][2], "amounts": [0.0] * k}).json()
    assert torch.equal(pixels(still["image"]), pixels(sheet["images"][2]))
    assert still["class"] == 6 and still["latent"]["class"] == 6
    # The slider's own {"z", "class"} reference, sent back alone, draws its image again.
    moved = client.post("/api/slide", json={"base": sheet["latents"][2], "amounts": [2.0] + [0.0] * (k - 1)}).json()
    back = client.post("/api/slide", json={"base": moved["latent"], "amounts": [0.0] * k}).json()
    assert back["image"] == moved["image"]
    # A class in the request wins over the reference's: the z keeps its style, the class changes.
    other = client.post("/api/slide", json={"base": sheet["latents"][2], "amounts": [0.0] * k, "class": 1}).json()
    assert other["class"] == 1 and other["image"] != still["image"]
    z = latent_sheet(explorer.config, 3, 16)[2]
    assert torch.equal(pixels(other["image"]), drawn(explorer.ckpt, z[None], 1)[0])


def test_sliders_move_a_z_within_its_class(client, explorer):
    info = client.get("/api/directions?class=2").json()
    assert info["class"] == 2 and info["count"] == 8 and info["explained"] == sorted(info["explained"], reverse=True)
    moved = client.post("/api/slide", json={"base": ref(1), "amounts": [3.0] + [0.0] * 7, "class": 2}).json()
    z = move_along(latent_sheet(explorer.config, 3, 16)[1], explorer.directions(2).directions, [3.0] + [0.0] * 7)
    assert torch.equal(torch.tensor(moved["latent"]["z"]), z)
    assert torch.equal(pixels(moved["image"]), drawn(explorer.ckpt, z[None], 2)[0])


def test_a_walk_stays_in_its_class_from_one_sample_to_the_other(client):
    sheet = client.post("/api/sheet", json={"seed": 3, "n": 16, "class": 4}).json()
    walk = client.post("/api/walk", json={"a": sheet["latents"][2], "b": sheet["latents"][7], "steps": 5}).json()
    assert walk["class"] == 4 and len(walk["images"]) == 5
    assert walk["images"][0] == sheet["images"][2] and walk["images"][-1] == sheet["images"][7]
    # The page sends its selector's class: the same ends walked in another class.
    other = client.post("/api/walk", json={"a": ref(2, 4), "b": ref(7, 4), "steps": 5, "class": 8}).json()
    sheet8 = client.post("/api/sheet", json={"seed": 3, "n": 16, "class": 8}).json()
    assert other["images"][0] == sheet8["images"][2] and other["images"][0] != walk["images"][0]
    # Ends drawn in different classes, and no class asked: each end is drawn as it was, the class moving between.
    across = client.post("/api/walk", json={"a": ref(2, 4), "b": ref(7, 8), "steps": 5}).json()
    assert (across["class"], across["end_class"]) == (4, 8)
    assert across["images"][0] == sheet["images"][2] and across["images"][-1] == sheet8["images"][7]


def test_a_walk_across_classes_at_a_fixed_z(client, ckpt):
    one_z = ref(5, 2)
    walk = client.post("/api/walk", json={"a": one_z, "b": one_z, "steps": 6, "class": 2, "end_class": 7}).json()
    assert (walk["class"], walk["end_class"], len(walk["images"])) == (2, 7, 6)
    z = latent_sheet(ckpt.model_config, 3, 16)[5]
    assert torch.equal(pixels(walk["images"][0]), drawn(ckpt, z[None], 2)[0])  # the style kept ...
    assert torch.equal(pixels(walk["images"][-1]), drawn(ckpt, z[None], 7)[0])  # ... the class changed
    assert len({im for im in walk["images"]}) > 2  # the class input moves by steps between them


def test_one_z_in_every_class(client, ckpt):
    answer = client.post("/api/classes", json={"base": ref(5, 2)}).json()
    assert answer["classes"] == [str(k) for k in range(10)] and len(answer["images"]) == 10
    assert answer["latents"][7] == ref(5, 7)
    z = latent_sheet(ckpt.model_config, 3, 16)[5]
    for k in (0, 7):
        assert torch.equal(pixels(answer["images"][k]), drawn(ckpt, z[None], k)[0])
    assert decode(answer["picture"]).width > 10 * 16  # one labelled row of ten, for download
    inverted = client.post("/api/classes", json={"base": {"z": [float(v) for v in z]}}).json()
    assert inverted["images"] == answer["images"] and inverted["latents"][3]["class"] == 3


def test_arithmetic_draws_its_result_in_the_class(client, ckpt):
    body = {"a": [ref(0, 1), ref(1, 1)], "b": [ref(3, 1)], "c": [ref(4, 1)], "noise": 0.25, "noise_seed": 1}
    answer = client.post("/api/arithmetic", json=body).json()
    assert answer["class"] == 1 and answer["latent"]["class"] == 1
    z = torch.tensor(answer["latent"]["z"])
    assert torch.equal(pixels(answer["result"]), drawn(ckpt, z[None], 1)[0])
    in_five = client.post("/api/arithmetic", json={**body, "class": 5}).json()
    assert in_five["latent"] == {**answer["latent"], "class": 5}  # the same z, drawn in another class
    assert torch.equal(pixels(in_five["result"]), drawn(ckpt, z[None], 5)[0])


def test_inversion_in_a_given_class_and_with_the_class_inferred(client, explorer, ckpt):
    z = latent_sheet(ckpt.model_config, 3, 16)[0]
    target = png_bytes(Image.fromarray(drawn(ckpt, z[None], 6)[0, 0].numpy()))
    given = client.post("/api/invert?restarts=2&steps=30&class=6", content=target).json()
    assert (given["class"], given["class_name"], given["inferred"]) == (6, "6", False)
    again = drawn(ckpt, torch.tensor(given["latent"]["z"])[None], given["latent"]["class"])
    assert torch.equal(again[0], pixels(given["image"]))  # the returned reference makes the returned image
    inferred = client.post("/api/invert?restarts=2&steps=30", content=target).json()
    assert inferred["inferred"] is True and len(inferred["class_mse"]) == 10
    # The class kept is the one whose best start fits best, and its z drawn in it is the image shown.
    best = min(range(10), key=lambda k: inferred["class_mse"][k])
    assert inferred["class"] == inferred["latent"]["class"] == best
    assert inferred["mse"] == pytest.approx(inferred["class_mse"][best], rel=1e-5)
    again = drawn(ckpt, torch.tensor(inferred["latent"]["z"])[None], best)
    assert torch.equal(again[0], pixels(inferred["image"]))


@pytest.mark.parametrize(
    "path,body,status,message",
    [
        ("/api/sheet", {"seed": 0, "class": 10}, 400, "class 10 is out of range: this model has classes 0 to 9"),
        ("/api/sheet", {"seed": 0, "class": -1}, 400, "class -1 is out of range"),
        ("/api/sheet", {"seed": 0, "class": "3"}, 422, "class: Input should be a valid integer"),
        ("/api/sheet", {"seed": 0, "class": 1.5}, 422, "class: Input should be a valid integer"),
        ("/api/sheet", {"seed": 0, "class_": 1}, 422, "class_: Extra inputs are not permitted"),
        ("/api/sheet", {"seed": 0}, 400, 'this model is class-conditional: give a "class" from 0 to 9'),
        ("/api/walk", {"a": ref(0, 1), "b": ref(1, 1), "end_class": 10}, 400, "class 10 is out of range"),
        ("/api/walk", {"a": ref(0, 12), "b": ref(1, 2), "class": 3}, 400, "class 12 is out of range"),
        ("/api/walk", {"a": ref(0), "b": ref(1)}, 400, 'give a "class"'),
        ("/api/slide", {"base": ref(0), "amounts": [0.0] * 8, "class": 99}, 400, "class 99 is out of range"),
        ("/api/arithmetic", {"a": [ref(0, 1)], "b": [ref(1, 1)], "c": [ref(2, 3)]}, 400, "different classes (1, 3)"),
        ("/api/classes", {"base": {"seed": 3, "n": 16}}, 422, "a latent point is either"),
        ("/api/classes", {"base": ref(0, 10)}, 400, "class 10 is out of range"),
    ],
)
def test_a_bad_class_gets_a_4xx_with_one_line(client, path, body, status, message):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error


@pytest.mark.parametrize(
    "query,status,message",
    [
        ("?class=10", 400, "class 10 is out of range"),
        ("?class=two", 422, "class"),
        ("?restarts=5", 400, "inferring the class tries all 10 classes: restarts x classes must be at most 40, so use at most 4 restarts"),
    ],
)
def test_a_bad_inversion_class_gets_a_4xx_with_one_line(client, query, status, message):
    r = client.post(f"/api/invert{query}", content=png_bytes(Image.new("L", (16, 16), 100)))
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]


def test_directions_need_a_class(client):
    r = client.get("/api/directions")
    assert r.status_code == 400 and 'give a "class"' in r.json()["error"]
    assert client.get("/api/directions?class=10").status_code == 400


def test_dcgan_serve_names_the_classes_and_answers_with_them(conditional_run, ckpt):
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "serve", str(conditional_run), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        method = ckpt.model_config.conditioning
        assert lines[0].rstrip().endswith(f"; class-conditional ({method}): 10 classes"), lines
        url = lines[1].split()[1]
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            assert json.load(r)["classes"][9] == "9"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
