"""Errors that end a ptfuzz command with exit code 2 and one clear line."""

from __future__ import annotations

import os


class PtfuzzError(Exception):
    """Bad input or a broken plugin: the message names the file, step or plugin at fault."""


class PluginError(PtfuzzError):
    """A plugin failed to load or register, or registered something inconsistent."""


class CorpusError(PtfuzzError):
    """A corpus file is malformed, of an unknown format, or names unknown things."""


class UsageError(PtfuzzError):
    """An unknown subsystem, policy, device or option value."""


class OutputError(PtfuzzError):
    """A file ptfuzz must write could not be (a full disk, an unwritable directory): names the path."""


class ModelError(PtfuzzError):
    """A device or kernel model raised: a bug in the plugin, not a finding."""


def raised(exc: BaseException) -> str:
    """``ValueError: bad value (device.py:123 in set_lsa)``: the error and the line that raised it."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        if "site-packages" not in code.co_filename:  # the innermost frame of the plugin or ptfuzz
            where = f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({where})" if where else text
