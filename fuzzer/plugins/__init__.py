"""Builtin plugins.  Each is registered in the ``ptfuzz`` entry-point group in pyproject.toml."""
