from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, settings
from ptfuzz_cxl import device as cxl_device

from fuzzer import cli, host
from fuzzer.hookspecs import hookimpl
from fuzzer.spec import DeviceSet, DeviceVariant

# Tests that use @given directly run derandomized; campaigns pass explicit seeds.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile("ci")


def _honest_immediate_device() -> DeviceVariant:
    """The spec device plus one honest, non-exclusive, immediate-effect feature.

    Needed to see holes in the fwctl immediate-scope checks: on the spec device
    the only immediate features are kernel-exclusive (rejected later anyway),
    and on the vendor device the perf-mode lie produces the same signatures.
    """
    feats = {**cxl_device.SPEC_FEATURES, cxl_device.ACME_THERMAL.uuid: cxl_device.ACME_THERMAL}
    return DeviceVariant(
        "honest-immediate",
        state=cxl_device.initial_state,
        info={**cxl_device.SPEC.info, "features": feats},
        doc="test device: spec + an honest immediate-effect feature",
    )


@hookimpl
def _devices() -> list[DeviceSet]:
    return [DeviceSet("cxl", (_honest_immediate_device(),))]


TEST_PLUGIN = SimpleNamespace(__name__="testdevices", ptfuzz_devices=_devices)


@pytest.fixture(scope="session")
def registry() -> host.Registry:
    return host.load(extra=[TEST_PLUGIN])


def run_cli(args: list[str]) -> int:
    """Run the ptfuzz command line in-process and return its exit code."""
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    return int(exc.value.code or 0)
