"""What code that *drives* ptfuzz imports: a live target, a CI script, a notebook.

A plugin describes a subsystem and imports ``fuzzer``.  A harness runs that
description somewhere else (the CXL plugin's live target runs corpus files and
generated sequences on a real kernel under QEMU, beside the model) and needs
the engine's moving parts: the loaded plugins, an executor for a policy and
device, the native search's moves, corpus files.  This module is that second,
equally small public surface; everything else under ``fuzzer/`` stays internal
and may change without notice.
"""

from fuzzer.corpus import Entry, step_to_json
from fuzzer.corpus import expand as expand_corpus
from fuzzer.corpus import load as load_entry
from fuzzer.corpus import migrate as migrate_entry
from fuzzer.errors import UsageError
from fuzzer.executor import Executor, StepResult
from fuzzer.explore import Explorer
from fuzzer.files import write_output
from fuzzer.host import Registry
from fuzzer.host import load as load_plugins
from fuzzer.replay import executor_for
from fuzzer.safetext import line as safe_line
from fuzzer.safetext import shown

__all__ = [
    "Entry",
    "Executor",
    "Explorer",
    "Registry",
    "StepResult",
    "UsageError",
    "executor_for",
    "expand_corpus",
    "load_entry",
    "load_plugins",
    "migrate_entry",
    "safe_line",
    "shown",
    "step_to_json",
    "write_output",
]
