"""A third-party plugin (examples/acme.py) uses only the public API and is fuzzed like a builtin."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from fuzzer import corpus, hookspecs, host
from fuzzer.campaign import Campaign
from fuzzer.spec import Caller
from fuzzer.world import Step

ACME = str(Path(__file__).resolve().parent.parent / "examples" / "acme.py")


@pytest.fixture(scope="module")
def reg() -> host.Registry:
    return host.load([ACME])


def test_builtin_cxl_loads_through_the_entry_point_group() -> None:
    import importlib.metadata

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="ptfuzz")}
    assert eps["cxl"] == "ptfuzz_cxl"
    reg = host.load()
    assert reg.provider[("subsystem", "cxl")] == "cxl"


def test_plugin_records_are_registered_and_attributed(reg: host.Registry) -> None:
    assert reg.provider[("command", "cxl", "ACME_TUNE")] == "acme"
    assert reg.provider[("policy", "cxl", "deny-vendor")] == "acme"
    assert reg.provider[("invariant", "cxl", "scrub-daily")] == "acme"
    assert reg.plugin_versions("cxl") == {"acme": "0.1.0", "cxl": "0.1.0"}


def test_vendor_command_is_judged_by_the_generic_invariants(reg: host.Registry) -> None:
    ex = reg.executor("cxl", reg.policy("cxl", "linux-raw"), reg.device("cxl", "spec"))
    r = ex.apply(Step("user", "ACME_TUNE", {"hours": 20}, "cxl.raw", Caller()))
    sigs = {v.signature for v in r.violations}
    assert sigs == {"declared-effects:cxl:ACME_TUNE:scrub.cycle_hours",
                    "kernel-owned-integrity:cxl:ACME_TUNE:scrub.cycle_hours:tainted"}
    deny = reg.executor("cxl", reg.policy("cxl", "deny-vendor"), reg.device("cxl", "spec"))
    r = deny.apply(Step("user", "ACME_TUNE", {"hours": 20}, "cxl.raw", Caller()))
    assert not r.decision.allowed and r.decision.errno == errno.EPERM and r.violations == ()


def test_plugin_invariant_fires_on_the_step_that_breaks_it(reg: host.Registry) -> None:
    ex = reg.executor("cxl", reg.policy("cxl", "linux-ioctl"), reg.device("cxl", "spec"))
    r = ex.apply(Step("kernel", "edac_set_scrub", {"cycle_hours": 30}))
    assert {v.signature for v in r.violations} == {"scrub-daily:cxl:edac_set_scrub:scrub.cycle_hours"}
    assert ex.apply(Step("kernel", "nvdimm_bind", {})).violations == ()  # not re-reported


def test_campaign_finds_the_plugin_lie_and_records_the_plugin(reg: host.Registry, tmp_path: Path) -> None:
    sig = "declared-effects:cxl:ACME_TUNE:scrub.cycle_hours"
    c = Campaign(reg, "cxl", reg.policy("cxl", "linux-raw"), reg.device("cxl", "spec"), seed=3,
                 max_examples=500, corpus_dir=tmp_path, targets=frozenset({sig}))
    f = c.run().findings[sig]
    assert [s.op for s in f.steps] == ["ACME_TUNE"]
    assert f.path is not None
    assert corpus.load(f.path).plugins == {"acme": "0.1.0", "cxl": "0.1.0"}


def test_every_hookspec_is_documented_with_an_example() -> None:
    specs = [getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("ptfuzz_")]
    assert len(specs) == 6
    for spec in specs:
        assert "Example::" in (spec.__doc__ or ""), spec.__name__


ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
PLUGIN_SOURCES = {
    "cxl": sorted((PLUGINS / "ptfuzz_cxl").rglob("*.py")),
    "rdma": sorted((PLUGINS / "ptfuzz_rdma").rglob("*.py")),
    "netdev": sorted((PLUGINS / "ptfuzz_netdev").rglob("*.py")),
    "gpu": sorted((PLUGINS / "ptfuzz_gpu").rglob("*.py")),
    "mlx5": sorted((PLUGINS / "ptfuzz_mlx5").rglob("*.py")),
    "acme": [ROOT / "examples" / "acme.py"],
    "nvme": sorted((ROOT / "examples" / "nvme").rglob("*.py")),
    "toy": [ROOT / "tests" / "toy.py"],
}


@pytest.mark.parametrize("name", sorted(PLUGIN_SOURCES))
def test_plugins_import_only_the_public_package(name: str) -> None:
    """A plugin imports ``fuzzer`` (a harness such as cxl's live target also ``fuzzer.harness``), never the engine's modules."""
    import ast

    sources = PLUGIN_SOURCES[name]
    if not sources:
        pytest.skip(f"{name} is not in this checkout")
    used = set()
    for src in sources:
        for node in ast.walk(ast.parse(src.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                used.add(node.module)
            elif isinstance(node, ast.Import):
                used.update(a.name for a in node.names)
    engine = {m for m in used if m == "fuzzer" or m.startswith("fuzzer.")}
    assert engine <= {"fuzzer", "fuzzer.harness"} and "fuzzer" in engine, sorted(engine - {"fuzzer", "fuzzer.harness"})


def test_the_engine_names_no_plugin() -> None:
    """Nothing under fuzzer/ imports a plugin or names a plugin's module: the builtin ones are peers.

    Plugins are found through entry points (``ptfuzz``, ``ptfuzz.commands``) only.
    """
    import ast

    packages = {p.name for p in PLUGINS.iterdir() if (p / "__init__.py").exists()}
    assert {"ptfuzz_cxl", "ptfuzz_rdma", "ptfuzz_netdev", "ptfuzz_gpu", "ptfuzz_mlx5"} <= packages
    offences = []
    for src in sorted((ROOT / "fuzzer").rglob("*.py")):
        for node in ast.walk(ast.parse(src.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = re.findall(r"[A-Za-z_][\w.]*", node.value)
            offences += [f"{src.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {n}" for n in names
                         if n.split(".")[0] in packages or n.startswith("fuzzer.plugins")]
    assert not (ROOT / "fuzzer" / "plugins").exists()
    assert offences == []


def test_the_public_package_exports_what_plugins_receive() -> None:
    import fuzzer

    for name in ("World", "Device", "StepContext", "Request", "Reaction", "Trust", "Firmware", "BELIEVED", "Step"):
        assert name in fuzzer.__all__, name
        assert getattr(fuzzer, name).__doc__, f"{name} has no docstring"
