"""nnctl: neural networks written from scratch in NumPy, trained from YAML configs."""

__version__ = "0.1.0"
