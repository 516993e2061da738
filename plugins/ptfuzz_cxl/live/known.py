"""Known differences between the model and a real kernel, each with its reason.

A conformance disagreement matched here is not a model error: it is QEMU's
emulation lacking something a real device has, or a test-only kernel patch.
Every row says which, once.  A disagreement that matches no row fails the
conformance run (exit 1) until the model is fixed or a row is added with a
reason a reviewer can check.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ptfuzz_cxl.live.target import LiveStep


@attrs.frozen
class Known:
    name: str
    reason: str
    matches: Callable[[str, str, LiveStep], bool]
    #: kernels it applies to (empty: all)
    kernels: tuple[str, ...] = ()


KNOWN: tuple[Known, ...] = ()


def match(kernel: str, policy: str, step: LiveStep) -> Known | None:
    for k in KNOWN:
        if (not k.kernels or kernel in k.kernels) and k.matches(kernel, policy, step):
            return k
    return None
