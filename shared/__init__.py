"""The service's core, the part of secret-vending that ships to Function Compute."""

# The service's version, written once: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"
