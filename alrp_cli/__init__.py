"""alrp: ranking-based object-detection losses (aLRP Loss, AP Loss) and their tooling."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alrp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
