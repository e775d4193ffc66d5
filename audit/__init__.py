"""nice-audit: audit OPCS-4 procedure coding against NICE interventional procedures guidance."""

# The one place the version is written: pyproject.toml reads it from here (setuptools `attr`, read
# without importing). A literal, because importlib.metadata costs 60 ms at every start and
# `nice-audit --version` has 150 ms in all (issue 15).
__version__ = "0.1.0"
