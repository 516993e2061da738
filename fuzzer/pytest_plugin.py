"""``pytest --ptfuzz-corpus DIR``: every corpus file is a test that a fixed bug must keep passing.

A corpus file is a bug that must stay fixed, so its test replays it with the
same code as ``ptfuzz replay`` (``fuzzer.replay``) and fails while the
recorded violation still occurs; the failure text is the step trace
``ptfuzz replay`` prints, every line through ``fuzzer.safetext`` (corpus
text is hostile).  A maintainer's own pytest run then is the regression
suite, with everything pytest gives: ``-k``, ``--junitxml``, pytest-xdist.

* ``--ptfuzz-baseline FILE_OR_DIR`` (repeatable): known findings.  A test
  whose signature is in the baseline is ``xfail(strict=False)``: failing is
  "known", passing (XPASS) is "fixed".  Only a replay that still fails is
  excused; a broken file or a missing plugin stays an error.
* ``--ptfuzz-policy P`` / ``--ptfuzz-without RULE``: replay under another
  policy, as ``ptfuzz replay --policy`` / ``--without``.
* ``--ptfuzz-plugin PATH`` (repeatable): plugins loaded by path, as
  ``ptfuzz --plugin``; a finding that needs a plugin that is not loaded
  errors, saying how to get it (``replay.require_plugins``).

The plugin is registered through the ``pytest11`` entry point, so it is
present in every pytest run of an environment where ptfuzz is installed, and
does nothing there: it only adds options, and collects corpus files only when
``--ptfuzz-corpus`` is given.  It imports the rest of ptfuzz only then.

The baseline is read by ``fuzzer.baseline``, as ``ptfuzz campaign --baseline``
reads it: a finding is known when its signature is, under the same policy
label (removed rules and knobs included) and device where the baseline names
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.baseline import Known
    from fuzzer.corpus import Entry
    from fuzzer.host import Registry
    from fuzzer.replay import Replay

#: How this plugin names the option that loads a plugin file, in "needs plugin" errors.
PLUGIN_OPTION = "pytest --ptfuzz-plugin PATH"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptfuzz", "ptfuzz: corpus files as regression tests")
    group.addoption("--ptfuzz-corpus", action="append", default=[], metavar="DIR_OR_FILE",
                    help="Collect every corpus file (*.json) under DIR_OR_FILE as a test that fails while "
                         "its finding still reproduces (repeatable).")
    group.addoption("--ptfuzz-baseline", action="append", default=[], metavar="DIR_OR_FILE",
                    help="Known findings: a corpus directory or file, or a text file of signatures, one a "
                         "line. Their tests are xfail (strict=False): XPASS means fixed (repeatable).")
    group.addoption("--ptfuzz-policy", default=None, metavar="POLICY",
                    help="Replay under this policy of each file's subsystem (as ptfuzz replay --policy).")
    group.addoption("--ptfuzz-without", action="append", default=[], metavar="RULE",
                    help="Remove a rule from the replay policy (as ptfuzz replay --without; repeatable).")
    group.addoption("--ptfuzz-plugin", action="append", default=[], metavar="PATH",
                    help="Load a ptfuzz plugin from a file or package directory (as ptfuzz --plugin).")


@attrs.define
class _State:
    """What the options say, read once per pytest process (each xdist worker has its own)."""

    roots: tuple[Path, ...]
    baseline: list[Known]
    policy: str | None
    without: tuple[str, ...]
    plugins: tuple[str, ...]
    _registry: Any = None
    _error: str | None = None

    def registry(self) -> Registry:
        """The plugins, loaded at the first test (a plugin's error fails every test, naming it)."""
        from fuzzer import host
        from fuzzer.errors import PtfuzzError

        if self._error is not None:
            pytest.fail(self._error, pytrace=False)
        if self._registry is None:
            try:
                self._registry = host.load(self.plugins)
            except PtfuzzError as exc:
                self._error = f"ptfuzz: error: {exc}"
                pytest.fail(self._error, pytrace=False)
        return self._registry


_STATE = pytest.StashKey[_State]()


def pytest_configure(config: pytest.Config) -> None:
    roots = config.getoption("ptfuzz_corpus")
    if not roots:
        return
    for root in roots:
        if not Path(root).exists():
            raise pytest.UsageError(f"--ptfuzz-corpus {root!r}: no such file or directory")
    config.stash[_STATE] = _State(
        roots=tuple(Path(r).resolve() for r in roots),
        baseline=read_baseline(config.getoption("ptfuzz_baseline")),
        policy=config.getoption("ptfuzz_policy"),
        without=tuple(config.getoption("ptfuzz_without")),
        plugins=tuple(config.getoption("ptfuzz_plugin")),
    )
    # The corpus is collected alone when no test paths were named (`pytest --ptfuzz-corpus corpora/`),
    # beside them otherwise.  A path already named is not added twice (xdist workers see the result).
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = []
    named = {Path(a.split("::")[0]).resolve() for a in config.args}
    config.args.extend(r for r in roots if Path(r).resolve() not in named)


def read_baseline(paths: Iterable[str]) -> list[Known]:
    """Known findings, read as ``ptfuzz campaign --baseline`` reads them (``fuzzer.baseline.load``); a source it
    cannot read is a usage error naming it, never an empty baseline."""
    from fuzzer import baseline
    from fuzzer.errors import PtfuzzError

    known: list[Known] = []
    for arg in paths:
        try:
            known.extend(baseline.load([arg]).known)
        except PtfuzzError as exc:
            raise pytest.UsageError(f"--ptfuzz-baseline {arg!r}: {exc}") from None
    return known


def known_as(known: Iterable[Known], entry: Entry) -> Known | None:
    """The baseline entry that knows ``entry``'s finding under its own policy label (rules removed, knobs set)
    and device, if any."""
    from fuzzer.spec import policy_label

    label = policy_label(entry.policy, entry.without, entry.knobs)
    return next((k for k in known if k.signature == entry.signature
                 and k.applies(entry.subsystem, label, entry.device)), None)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(_STATE, None)
    if state is None or file_path.suffix != ".json":
        return None
    path = file_path.resolve()
    for root in state.roots:
        if path == root or (root in path.parents and not any(
                part.startswith(".") for part in path.relative_to(root).parts)):
            return CorpusFile.from_parent(parent, path=file_path, nodeid=_visible_nodeid(parent, file_path))
    return None


def _visible_nodeid(parent: pytest.Collector, file_path: Path) -> str | None:
    """A node id for a file whose name holds control characters, with them escaped.

    A corpus file's *name* is hostile data too: pytest puts node ids raw into its
    terminal summary and into JUnit's ``classname`` attribute, where an ESC makes
    the XML unparsable.  ``None`` (pytest's own id) for every ordinary name, so
    ``pytest corpora/cxl/x.json::SIG`` keeps selecting as usual.
    """
    from fuzzer import safetext

    try:
        nodeid = file_path.relative_to(parent.config.rootpath).as_posix()
    except ValueError:
        nodeid = file_path.as_posix()
    seen = safetext.visible(nodeid)
    return seen if seen != nodeid else None


class CorpusFile(pytest.File):
    """One corpus file: one test, named after the signature it records."""

    def collect(self) -> Iterator[CorpusItem]:
        from fuzzer import corpus, safetext
        from fuzzer.errors import PtfuzzError

        try:
            entry = corpus.load(self.path)
        except PtfuzzError as exc:  # still a test, which errors: collection goes on for the other files
            yield CorpusItem.from_parent(self, name="unreadable", entry=None, error=f"ptfuzz: error: {exc}")
            return
        # "::" separates node ids: a signature cannot be allowed to make one up
        name = safetext.line(entry.signature, limit=200).replace("::", ":_:") or "unnamed"
        item = CorpusItem.from_parent(self, name=name, entry=entry, error=None)
        state = self.config.stash[_STATE]
        known = known_as(state.baseline, entry)
        if known is not None:
            item.add_marker(pytest.mark.xfail(reason=f"known finding (baseline {safetext.line(known.where)})",
                                              raises=StillFails, strict=False))
        item.user_properties.append(("signature", safetext.line(entry.signature)))
        yield item


class StillFails(AssertionError):
    """The replay still shows the recorded violation; the message is the trace."""


class CorpusItem(pytest.Item):
    """Replays one corpus file; fails while its finding reproduces."""

    def __init__(self, *, entry: Entry | None, error: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry
        self.error = error
        self.replayed: Replay | None = None

    def setup(self) -> None:
        """Load and replay: a file ptfuzz refuses, or a plugin it needs, is an error of the test."""
        from fuzzer.errors import PtfuzzError
        from fuzzer.replay import replay, require_plugins

        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
        assert self.entry is not None
        state = self.config.stash[_STATE]
        registry = state.registry()
        try:
            require_plugins(registry, self.entry, PLUGIN_OPTION)
            self.replayed = replay(registry, self.entry, state.policy, state.without or None)
        except PtfuzzError as exc:
            pytest.fail(f"ptfuzz: error: {exc}", pytrace=False)

    def runtest(self) -> None:
        from fuzzer import safetext
        from fuzzer.replay import trace

        rep = self.replayed
        assert rep is not None
        if rep.still_fails:
            raise StillFails("\n".join(safetext.line(line) for line in trace(rep)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, StillFails):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"ptfuzz replay {self.name}"
