"""The explorer page end to end in headless Chromium (Debian's `chromium`, driven by Playwright).

A real server on a free port serves a tiny digits model; each test drives the
page the way a user would: load it, click, upload, drag a slider, download.
A second server serves a tiny class-conditional model, for the class selector.
Without Chromium these tests are skipped (install it with `make browser`);
with DCGAN_REQUIRE_BROWSER=1, as CI sets, a missing browser is a failure.
"""

import io
import os
import shutil

import pytest
from PIL import Image

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")

from dcgan.checkpoint import load_checkpoint  # noqa: E402
from dcgan.data import load_dataset  # noqa: E402
from dcgan.server import Explorer, bind_socket, create_app, running  # noqa: E402
from dcgan.training import Trainer  # noqa: E402

from conftest import TINY  # noqa: E402

pytestmark = pytest.mark.browser

# The flags a root user in a sandbox without network needs (see the env notes): no sandbox, no GPU,
# and no background connections, which a closed network would refuse by the dozen.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000  # the two cores may be busy with other tests


def chromium_path() -> str | None:
    for candidate in (os.environ.get("DCGAN_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        if os.environ.get("DCGAN_REQUIRE_BROWSER"):
            pytest.fail("DCGAN_REQUIRE_BROWSER is set but no Chromium was found (make browser installs Debian's)")
        pytest.skip("no Chromium found: `make browser` installs Debian's chromium")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A real uvicorn server on a free port over a tiny generator trained on 16x16 digits."""
    run = tmp_path_factory.mktemp("browser") / "run"
    Trainer.from_options(run_dir=run, data="digits", progress=False, steps=40, seed=0, batch_size=64, **TINY).train()
    with bind_socket("127.0.0.1", 0) as sock, running(create_app(Explorer(load_checkpoint(run))), sock) as url:
        yield url


@pytest.fixture(scope="module")
def conditional_url(conditional_run):
    """A real server over a tiny class-conditional generator (conftest's, for each conditioning method)."""
    with bind_socket("127.0.0.1", 0) as sock, running(create_app(Explorer(load_checkpoint(conditional_run))), sock) as url:
        yield url


def _open(browser, url):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    # Waits are written as functions: a bare expression would be eval-ed, which the page's CSP forbids.
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # a JavaScript exception fails the test
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser, server_url):
    yield from _open(browser, server_url)


@pytest.fixture
def conditional_page(browser, conditional_url):
    yield from _open(browser, conditional_url)


def cells(page):
    return page.locator("#grid .cell")


def natural_width(page, selector: str) -> int:
    return page.eval_on_selector(selector, "img => img.naturalWidth")


def test_the_page_loads_with_the_model_and_a_grid(page):
    assert "16×16×1" in page.inner_text("#model-info") and "digits" in page.inner_text("#model-info")
    assert cells(page).count() == 64
    assert natural_width(page, "#grid .cell img") == 16
    assert page.is_hidden("#error")
    # An unconditional model: no class selector, no class tools, and requests without a class.
    assert page.is_hidden("#class-field") and page.is_hidden("#mode-classes") and page.is_hidden("#classes")
    assert page.is_hidden("#invert-class-field") and "classes" not in page.inner_text("#model-info")


def test_new_seed_draws_a_new_grid(page):
    first = cells(page).first.locator("img").get_attribute("src")
    with page.expect_response("**/api/sheet"):
        page.click("#new-seed")
    page.wait_for_function("src => document.querySelector('#grid .cell img').src !== src", arg=first)
    assert page.input_value("#seed") != "0" and cells(page).count() == 64


def test_clicking_two_samples_walks_between_them(page):
    page.fill("#walk-steps", "7")
    cells(page).nth(3).click()
    with page.expect_response("**/api/walk") as response:
        cells(page).nth(11).click()
    assert response.value.status == 200
    page.wait_for_function("() => document.querySelectorAll('#walk-images img').length === 7")
    assert page.locator("#walk-images img").first.get_attribute("src") == cells(page).nth(3).locator("img").get_attribute("src")
    assert "3 → 11" in page.inner_text("#walk-ends")


def test_arithmetic_on_picked_groups_returns_images_of_the_right_size(page):
    for group, indices in (("a", (0, 1, 2)), ("b", (3,)), ("c", (4, 5))):
        page.check(f"input[name=mode][value={group}]")
        for i in indices:
            cells(page).nth(i).click()
    assert page.locator("#group-a .cell").count() == 3 and page.locator("#group-c .cell").count() == 2
    with page.expect_response("**/api/arithmetic") as response:
        page.click("#run-arithmetic")
    assert response.value.status == 200
    page.wait_for_selector("#arith-grid:not([hidden])")
    page.wait_for_function("() => document.querySelector('#arith-grid').naturalWidth > 0")
    assert natural_width(page, "#arith-result") == 16  # the result: one image of the model's size
    assert natural_width(page, "#arith-grid") == 3 * 16 + 4 * 2  # the 3x3 noise grid
    page.click("#pin-arithmetic")
    assert page.locator("#pinned .cell").count() == 1


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("#seed", "-5", "seed: Input should be greater than or equal to 0"),
        ("#seed", "2.5", "seed: Input should be a valid integer"),
        ("#count", "100000", "n must be from 1 to 256"),
    ],
)
def test_a_bad_value_shows_the_servers_error(page, field, value, message):
    page.fill(field, value)
    with page.expect_response("**/api/sheet") as response:
        page.click("#show")
    assert 400 <= response.value.status < 500
    page.wait_for_selector("#error:not([hidden])")
    assert message in page.inner_text("#error")
    assert cells(page).count() == 64  # the grid shown before stays
    page.fill(field, "1")
    page.click("#show")
    page.wait_for_selector("#error", state="hidden")


def test_uploading_an_image_inverts_it_and_pins_the_result(page, tmp_path):
    digit = load_dataset("digits", image_size=16).images[0, 0].numpy()
    path = tmp_path / "my digit.png"
    Image.fromarray(digit).resize((64, 64)).save(path)
    page.set_input_files("#invert-file", str(path))
    page.fill("#invert-restarts", "2")
    page.fill("#invert-steps", "40")
    page.click("#run-invert")
    page.wait_for_function("() => document.querySelector('#invert-score').textContent.includes('PSNR')")
    assert natural_width(page, "#invert-image") == 16
    assert page.locator("#pinned .cell").count() == 1
    page.fill("#invert-steps", "99999")  # over the server's limit
    page.click("#run-invert")
    page.wait_for_selector("#error:not([hidden])")
    assert "steps must be from 1 to 1000" in page.inner_text("#error")


def test_a_slider_moves_the_chosen_sample(page):
    assert page.locator("#slider-list input[type=range]").count() == 8
    page.check("input[name=mode][value=slide]")
    cells(page).nth(2).click()
    page.wait_for_selector("#slide-image:not([hidden])")
    page.wait_for_function("() => document.querySelector('#slide-image').src === document.querySelectorAll('#grid .cell img')[2].src")
    before = page.get_attribute("#slide-image", "src")
    with page.expect_response("**/api/slide"):
        page.locator("#slider-list input").first.fill("3")
    page.wait_for_function("src => document.querySelector('#slide-image').src !== src", arg=before)
    assert page.input_value("#slider-list input >> nth=0") == "3"


def test_the_download_button_saves_a_png(page, tmp_path):
    with page.expect_download() as download:
        page.click("#download-sheet")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "samples-seed0-n64.png"
    with Image.open(io.BytesIO(saved.read_bytes())) as img:
        assert img.format == "PNG" and img.width > 8 * 16


# --------------------------------------------------------------------------- #
# A class-conditional model
# --------------------------------------------------------------------------- #
def first_src(page, selector: str = "#grid .cell img") -> str:
    return page.locator(selector).first.get_attribute("src")


def test_picking_a_class_redraws_the_sheet_in_it(conditional_page):
    page = conditional_page
    assert "10 classes" in page.inner_text("#model-info")
    assert page.is_visible("#class") and page.locator("#class option").count() == 10
    assert page.input_value("#class") == "0" and page.get_attribute("#grid", "data-class") == "0"
    before = first_src(page)
    with page.expect_request("**/api/sheet") as request:
        page.select_option("#class", "7")
    assert request.value.post_data_json["class"] == 7
    page.wait_for_function("src => document.querySelector('#grid .cell img').src !== src", arg=before)
    assert page.get_attribute("#grid", "data-class") == "7" and cells(page).count() == 64
    page.select_option("#class", "0")  # back to class 0: the same z draw the same images
    page.wait_for_function("src => document.querySelector('#grid .cell img').src === src", arg=before)


def test_a_walk_and_the_sliders_are_redrawn_in_a_new_class(conditional_page):
    page = conditional_page
    cells(page).nth(3).click()
    with page.expect_response("**/api/walk"):
        cells(page).nth(11).click()
    page.wait_for_function("() => document.querySelectorAll('#walk-images img').length === 10")
    page.check("input[name=mode][value=slide]")
    cells(page).nth(2).click()
    page.wait_for_function("() => document.querySelector('#slide-image').src === document.querySelectorAll('#grid .cell img')[2].src")

    def asked(path):
        return lambda r: r.url.endswith(f"/api/{path}") and r.post_data_json["class"] == 5

    # The sheet, the walk, the sliders' directions and the slider image are each asked for again, in class 5 ...
    with (
        page.expect_request(asked("sheet")),
        page.expect_request(asked("walk")),
        page.expect_request(asked("slide")),
        page.expect_request(lambda r: r.url.endswith("/api/directions?class=5")),
    ):
        page.select_option("#class", "5")
    # ... and show it: the walk starts at sample 3 and the slider (at zero) shows sample 2 of the new sheet.
    page.wait_for_function("() => document.querySelector('#walk-images img').src === document.querySelectorAll('#grid .cell img')[3].src")
    page.wait_for_function("() => document.querySelector('#slide-image').src === document.querySelectorAll('#grid .cell img')[2].src")


def test_one_z_in_every_class_and_a_walk_across_them(conditional_page):
    page = conditional_page
    page.check("input[name=mode][value=classes]")
    with page.expect_response("**/api/classes"):
        cells(page).nth(5).click()
    page.wait_for_function("() => document.querySelectorAll('#classes-images img').length === 10")
    # Class 0 is selected: the row's first image is the sample itself.
    assert first_src(page, "#classes-images img") == cells(page).nth(5).locator("img").get_attribute("src")
    page.fill("#walk-steps", "6")
    with page.expect_request("**/api/walk") as request:
        page.locator("#classes-images .cell").nth(7).click()
    assert request.value.post_data_json["end_class"] == 7 and request.value.post_data_json["class"] == 0
    page.wait_for_function("() => document.querySelectorAll('#walk-images img').length === 6")
    walk = page.locator("#walk-images img")
    assert walk.first.get_attribute("src") == cells(page).nth(5).locator("img").get_attribute("src")
    assert walk.last.get_attribute("src") == page.locator("#classes-images img").nth(7).get_attribute("src")
    assert "class 0 → 7" in page.inner_text("#walk-ends")


def test_inversion_infers_the_class_of_an_upload(conditional_page, tmp_path):
    page = conditional_page
    digit = load_dataset("digits", image_size=16).images[0, 0].numpy()
    path = tmp_path / "digit.png"
    Image.fromarray(digit).save(path)
    page.set_input_files("#invert-file", str(path))
    page.fill("#invert-restarts", "2")
    page.fill("#invert-steps", "20")
    with page.expect_request(lambda r: "/api/invert" in r.url) as request:
        page.click("#run-invert")
    assert "class=" not in request.value.url  # "infer it" is the default
    page.wait_for_function("() => document.querySelector('#invert-score').textContent.includes('(inferred)')")
    page.select_option("#invert-class", "3")
    with page.expect_request(lambda r: "/api/invert" in r.url) as request:
        page.click("#run-invert")
    assert "class=3" in request.value.url
    page.wait_for_function("() => document.querySelectorAll('#pinned .cell').length === 2")
