"""nice-audit: audit OPCS-4 procedure coding against NICE interventional procedures guidance."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nice-audit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
