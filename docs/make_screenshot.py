"""Make docs/explorer.png, the README's picture of `dcgan serve`, from a trained run.

    python docs/make_screenshot.py runs/mnist docs/explorer.png

Starts the explorer on a free loopback port, drives it in headless Chromium (Debian's `chromium`;
`make browser` installs it) the way a user would (a walk between two clicked samples, vector
arithmetic on picked groups, a principal-direction slider) and saves a screenshot of the page.
"""

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from dcgan.checkpoint import load_checkpoint
from dcgan.server import Explorer, bind_socket, create_app, running

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-dev-shm-usage"]


def drive(page, seed: int) -> None:
    """A short session: a grid, one walk, one arithmetic, one slider moved."""
    cells = page.locator("#grid .cell")
    page.fill("#seed", str(seed))
    page.fill("#count", "36")
    with page.expect_response("**/api/sheet"):
        page.click("#show")
    page.wait_for_function("() => document.querySelectorAll('#grid .cell').length === 36")
    page.fill("#walk-steps", "10")
    cells.nth(1).click()
    with page.expect_response("**/api/walk"):
        cells.nth(7).click()
    for group, indices in (("a", (0, 2, 4)), ("b", (5, 9, 13)), ("c", (21, 26, 30))):
        page.check(f"input[name=mode][value={group}]")
        for i in indices:
            cells.nth(i).click()
    with page.expect_response("**/api/arithmetic"):
        page.click("#run-arithmetic")
    page.wait_for_selector("#arith-grid:not([hidden])")
    page.check("input[name=mode][value=slide]")
    cells.nth(3).click()
    page.wait_for_selector("#slide-image:not([hidden])")
    with page.expect_response("**/api/slide"):
        page.locator("#slider-list input").first.fill("2")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(500)  # let the last image paint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory or checkpoint")
    parser.add_argument("out", nargs="?", default="docs/explorer.png")
    parser.add_argument("--seed", type=int, default=0, help="the sheet's seed")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        sys.exit("no Chromium found: `make browser` installs Debian's chromium")
    app = create_app(Explorer(load_checkpoint(args.run)))
    with bind_socket("127.0.0.1", 0) as sock, running(app, sock) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        drive(page, args.seed)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
