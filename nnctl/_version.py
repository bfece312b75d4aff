"""nnctl's version, in one place: the package, the command line, run summaries and exported
models read it from here, and pyproject.toml too."""

__version__ = "0.1.0"
