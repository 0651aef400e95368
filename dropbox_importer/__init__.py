"""dropbox-importer: lead files dropped in folders, imported into Marketo."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dropbox-importer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
