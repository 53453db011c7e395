"""The package version: one home (pyproject.toml reads it; `mmcot --version`, output markers and reports print it)."""

__version__ = "0.1.0"
