"""ptfuzz's version, in a module of its own so engine modules need not import the public package.

``fuzzer/__init__.py`` re-exports it as ``fuzzer.__version__``; inside the engine
``from fuzzer.version import __version__`` keeps the package a leaf that nothing
imports from (``tests/test_layers.py``).  Keep it equal to ``pyproject.toml``'s.
"""

__version__ = "0.1.0"
