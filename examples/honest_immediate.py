"""A CXL device with an honest immediate-effect feature, as a ``--plugin`` file.

The pre-merge CXL fwctl revisions let Set Feature of any feature through at
CONFIGURATION scope; 7.3.4's ``cxlctl_validate_set_features()`` asks for
DEBUG_WRITE_FULL when the feature's Set Feature effects say "immediate". None
of the shipped devices has a user feature that says so honestly, so this one adds
ACME's thermal feature to the ``spec`` device (the test suite's
``honest-immediate`` device, tests/conftest.py):

    ptfuzz --plugin examples/honest_immediate.py run cxl --policy linux-fwctl \\
        --device honest-immediate --without set-feature-immediate-scope --seed 1 --time 10 \\
        --corpus "$(mktemp -d)"
"""

from ptfuzz_cxl import device as cxl_device

from fuzzer import DeviceSet, DeviceVariant, hookimpl


@hookimpl
def ptfuzz_devices() -> list[DeviceSet]:
    feats = {**cxl_device.SPEC_FEATURES, cxl_device.ACME_THERMAL.uuid: cxl_device.ACME_THERMAL}
    return [DeviceSet("cxl", (DeviceVariant("honest-immediate", state=cxl_device.initial_state,
                                            info={**cxl_device.SPEC.info, "features": feats},
                                            doc="spec + an honest immediate-effect feature"),))]
