"""A third-party plugin (examples/acme.py) uses only the public API and is fuzzed like a builtin."""

from __future__ import annotations

import errno
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
    assert eps["cxl"] == "fuzzer.plugins.cxl"
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
PLUGIN_SOURCES = {
    "cxl": sorted((ROOT / "fuzzer" / "plugins" / "cxl").glob("*.py")),
    "rdma": sorted((ROOT / "fuzzer" / "plugins" / "rdma").glob("*.py")),
    "netdev": sorted((ROOT / "fuzzer" / "plugins" / "netdev").glob("*.py")),
    "mlx5": sorted((ROOT / "fuzzer" / "plugins" / "mlx5").glob("*.py")),
    "acme": [ROOT / "examples" / "acme.py"],
    "nvme": sorted((ROOT / "examples" / "nvme").rglob("*.py")),
    "toy": [ROOT / "tests" / "toy.py"],
}


@pytest.mark.parametrize("name", sorted(PLUGIN_SOURCES))
def test_plugins_import_only_the_public_package(name: str) -> None:
    """A plugin imports ``fuzzer`` (and may read another plugin's tables), never the engine's modules."""
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
    engine = {m for m in used if (m == "fuzzer" or m.startswith("fuzzer.")) and not m.startswith("fuzzer.plugins.")}
    assert engine == {"fuzzer"}, sorted(engine - {"fuzzer"})


def test_the_public_package_exports_what_plugins_receive() -> None:
    import fuzzer

    for name in ("World", "Device", "StepContext", "Request", "Reaction", "Trust", "Firmware", "BELIEVED", "Step"):
        assert name in fuzzer.__all__, name
        assert getattr(fuzzer, name).__doc__, f"{name} has no docstring"
