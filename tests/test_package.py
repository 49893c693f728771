"""The package as a whole: one source for its version."""

import importlib.metadata
import sys
from pathlib import Path

import dcgan

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_version_is_pyprojects_read_from_the_metadata():
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert dcgan.__version__ == importlib.metadata.version("dcgan") == declared
    from dcgan import _version
    from dcgan.checkpoint import __version__ as recorded_in_checkpoints

    assert recorded_in_checkpoints is _version.__version__
