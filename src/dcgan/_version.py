"""The package's version, read once from its installed metadata, whose one source is pyproject.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcgan")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
