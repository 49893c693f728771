"""The quick start runs as written: every `bash` and `python` block of docs/getting-started.md and README.md.

Each block runs in a temporary folder that holds `photos/` (scikit-learn's digits as PNG files, a folder
per class), the folder the pages train on. A shell line is a `dcgan` command, run with this environment's
`dcgan`; `make`, `pip` and `source` lines are skipped, since they set up the environment these tests run
in, and any other command fails the test until it gets a rule here. A command must exit 0 and leave what
it names: every `--out` path, and for `dcgan train` a checkpoint at the step `--steps` asks for. A python
block is executed, and every `run_dir="..."` it names must hold a checkpoint afterwards.

The pages also name files and Python names that move (issue 24 moves modules into packages): every
`src/`, `tests/` and `benchmarks/` path they give must exist, and every `dcgan.NAME` must resolve.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dcgan

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("docs/getting-started.md", "README.md")
SKIPPED = {"make", "pip", "source"}  # set-up: the suite already runs inside what these lines set up
SHELLS = {"bash", "sh", "console"}  # console: only the `$ ` lines are commands, the rest is output


def fenced_blocks(document: str) -> list[tuple[str, int, str]]:
    """(language, line of the opening fence, body) for each fenced block of a Markdown file."""
    found, language, start, body = [], None, 0, []
    for number, line in enumerate((REPO / document).read_text().splitlines(), 1):
        if language is None and line.startswith("```"):
            language, start, body = line[3:].split(" ")[0].strip(), number, []
        elif language is not None and line.strip() == "```":
            found.append((language, start, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
    return found


def commands(language: str, body: str) -> list[list[str]]:
    """The shell block's commands as argv lists, comments and skipped set-up lines left out."""
    lines = body.replace("\\\n", " ").splitlines()
    if language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    argvs = [shlex.split(line, comments=True) for line in lines]
    return [argv for argv in argvs if argv and argv[0] not in SKIPPED]


def runnable() -> list:
    params = []
    for document in DOCUMENTS:
        for language, line, body in fenced_blocks(document):
            if language == "python" or (language in SHELLS and commands(language, body)):
                params.append(pytest.param(document, language, body, id=f"{document}:{line}"))
    return params


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of images as a user would have one: the 1,797 digits as 8x8 PNGs, a sub-folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("docs-data") / "photos"
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * (255 / 16)).astype("uint8")).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def workdir(tmp_path, photos, monkeypatch) -> Path:
    shutil.copytree(photos, tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def dcgan_command() -> list[str]:
    script = Path(sys.executable).with_name("dcgan")  # the console script of this environment
    return [str(script)] if script.exists() else [sys.executable, "-m", "dcgan"]


def test_the_quick_start_has_blocks_to_run():
    """The rules above still find the quick start (a changed fence would otherwise test nothing)."""
    blocks = fenced_blocks("docs/getting-started.md")
    shell = [argv for language, _, body in blocks if language in SHELLS for argv in commands(language, body)]
    assert sum(argv[:2] == ["dcgan", "train"] for argv in shell) >= 2, shell
    assert any(language == "python" for language, _, _ in blocks)
    readme = [argv for language, _, body in fenced_blocks("README.md") if language in SHELLS for argv in commands(language, body)]
    assert ["dcgan", "train"] in [argv[:2] for argv in readme], readme


@pytest.mark.parametrize("document, language, body", runnable())
def test_block_runs_as_written(document, language, body, workdir):
    if language == "python":
        namespace = {"__name__": "__docs__"}
        exec(compile(body, document, "exec"), namespace)
        run_dirs = re.findall(r"""run_dir=["']([^"']+)["']""", body)
        for run_dir in run_dirs:
            assert (workdir / run_dir / "checkpoints" / "latest.safetensors").is_file(), run_dir
        return
    for argv in commands(language, body):
        line = shlex.join(argv)
        assert argv[0] == "dcgan", f"{document}: no rule for `{line}`: run it here or add it to SKIPPED"
        done = subprocess.run(dcgan_command() + argv[1:], cwd=workdir, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stderr[-2000:]}"
        out = option(argv, "--out")
        if out:
            assert (workdir / out).exists(), f"`{line}` did not write {out}"
        if argv[1] == "train":
            named = out or option(argv, "--resume")  # else the newest runs/DATA-DATE-TIME
            run = workdir / named if named else max((workdir / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
            checkpoint = dcgan.load_checkpoint(run / "checkpoints" / "latest.safetensors")
            steps = option(argv, "--steps")
            if steps:
                assert checkpoint.step == int(steps), f"`{line}` stopped at step {checkpoint.step}"


def test_readme_links_resolve():
    """The README's relative links and pictures point at files (mkdocs checks the pages, not the README)."""
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the manual"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, missing


PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES)
def test_the_files_a_page_names_exist(page):
    named = set(re.findall(r"\b(?:src|tests|benchmarks)/[\w/.-]*\w", (REPO / page).read_text()))
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"{page} names files that are not there: {missing}"


def resolve(name: str):
    """`dcgan.a.b.c`: import the longest module prefix, then the attributes after it."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ModuleNotFoundError(name)


@pytest.mark.parametrize("page", PAGES)
def test_the_python_names_a_page_gives_resolve(page):
    """Without a DeprecationWarning, except on the architecture page, whose table lists the moved paths."""
    names = sorted(set(re.findall(r"\bdcgan(?:\.[A-Za-z_]\w*)+", (REPO / page).read_text())))
    broken = []
    for name in names:
        with warnings.catch_warnings():
            if page != "docs/ARCHITECTURE.md":
                warnings.simplefilter("error", DeprecationWarning)
            try:
                resolve(name)
            except (ImportError, AttributeError, DeprecationWarning) as error:
                broken.append(f"{name} ({type(error).__name__}: {error})")
    assert not broken, f"{page}: {broken}"
