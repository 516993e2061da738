"""The live target's build tree survives an interrupted build (no kernel is built here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ptfuzz_cxl.live import kernels

pytestmark = pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1): bash plugins/ptfuzz_cxl/live/deps.sh")

PATCH = """\
why: a test patch
--- a/f.c
+++ b/f.c
@@ -1 +1 @@
-old
+new
"""


def test_a_build_killed_with_patches_applied_is_undone_by_the_next(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    patches, tree = tmp_path / "patches", tmp_path / "tree"
    patches.mkdir()
    tree.mkdir()
    (patches / "p.patch").write_text(PATCH)
    (tree / "f.c").write_text("old\n")
    log = tmp_path / "log"
    monkeypatch.setattr(kernels, "PATCH_DIR", patches)
    kernels._patch(tree, "p.patch", log)
    assert (tree / "f.c").read_text() == "new\n"
    # the build is killed here; ptfuzz is then upgraded and the patch moves or changes
    (patches / "p.patch").unlink()
    kernels._undo_leftovers(tree, log)
    assert (tree / "f.c").read_text() == "old\n"
    assert not (tree / kernels.APPLIED_DIR).exists()
    kernels._undo_leftovers(tree, log)  # nothing left: a no-op
    assert (tree / "f.c").read_text() == "old\n"
