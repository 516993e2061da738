"""Errors that end a ptfuzz command with exit code 2 and one clear line."""

from __future__ import annotations


class PtfuzzError(Exception):
    """Bad input or a broken plugin: the message names the file, step or plugin at fault."""


class PluginError(PtfuzzError):
    """A plugin failed to load or register, or registered something inconsistent."""


class CorpusError(PtfuzzError):
    """A corpus file is malformed, of an unknown format, or names unknown things."""


class UsageError(PtfuzzError):
    """An unknown subsystem, policy, device or option value."""


class ModelError(PtfuzzError):
    """A device or kernel model raised: a bug in the plugin, not a finding."""
