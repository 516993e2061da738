"""CXL historical bugs of reference §6 that were only partly reproducible (fidelity review §4), each as a
historical policy whose finding is in the corpus, found at its shortest sequence, and closed by 7.3.4.

* ``linux-raw-2021-vendor-proposal``: the 2021 RAW review's declined proposal (vendor opcodes whose CEL
  effect bits [5:0] are 0 allowed), a what-if;
* ``linux-raw-poison-allowed``: mbox.c before GET/INJECT/CLEAR_POISON joined
  ``cxl_disabled_raw_commands[]`` and lost their ioctl ids;
* ``linux-ioctl-immediate-partition``: the 2021 ioctl path before 6179045ccc0c
  ("cxl/mbox: Block immediate mode in SET_PARTITION_INFO command").
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal
from fuzzer.replay import replay
from fuzzer.spec import Caller
from fuzzer.world import Step

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "cxl"
NOBODY = Caller(frozenset())

# (historical policy, device, signature, shortest ops, channel of the last step, its corpus file)
HISTORY = [
    ("linux-raw-2021-vendor-proposal", "vendor", "kernel-owned-integrity:cxl:ACME_RAS_RESTORE:scrub.cycle_hours",
     ["ACME_RAS_RESTORE"], "cxl.raw",
     "linux-raw-2021-vendor-proposal--vendor--kernel-owned-integrity--ACME_RAS_RESTORE--scrub.cycle_hours.json"),
    ("linux-raw-poison-allowed", "spec", "kernel-owned-integrity:cxl:INJECT_POISON:poison",
     ["INJECT_POISON"], "cxl.ioctl",
     "linux-raw-poison-allowed--spec--kernel-owned-integrity--INJECT_POISON--poison.json"),
    ("linux-raw-poison-allowed", "spec", "kernel-owned-integrity:cxl:INJECT_POISON:poison:tainted",
     ["INJECT_POISON"], "cxl.raw",
     "linux-raw-poison-allowed--spec--kernel-owned-integrity--INJECT_POISON--poison--tainted.json"),
    ("linux-ioctl-immediate-partition", "spec",
     "kernel-owned-integrity:cxl:SET_PARTITION_INFO:partition.active_volatile", ["SET_PARTITION_INFO"], "cxl.ioctl",
     "linux-ioctl-immediate-partition--spec--kernel-owned-integrity--SET_PARTITION_INFO--partition."
     "active_volatile.json"),
]
#: the 7.3.4 policy each history is replayed under, and the rule that now refuses the step
FIXED = {"linux-raw-2021-vendor-proposal": "linux-raw", "linux-raw-poison-allowed": "linux-raw",
         "linux-ioctl-immediate-partition": "linux-ioctl"}


@pytest.mark.parametrize(("policy", "device", "signature", "ops", "channel", "name"), HISTORY,
                         ids=[h[2].split(":", 2)[2] + "-" + h[4] for h in HISTORY])
def test_the_history_is_found_shortest_and_closed_by_7_3_4(registry: Registry, tmp_path: Path, policy: str,
                                                            device: str, signature: str, ops: list[str],
                                                            channel: str, name: str) -> None:
    campaign = Campaign(registry, "cxl", registry.policy("cxl", policy), registry.device("cxl", device), seed=1,
                        max_examples=3000, corpus_dir=tmp_path)  # a whole run keeps the shortest of each
    found = campaign.run().findings[signature]
    assert [s.op for s in found.steps] == ops and found.steps[-1].channel == channel
    assert is_one_minimal(campaign.executor, found.steps, signature)
    # the committed file is this finding, and replays: failing under its policy, passing under 7.3.4
    entry = corpus.load(CORPUS / name)
    assert (entry.policy, entry.device, entry.signature) == (policy, device, signature)
    assert [s.op for s in entry.steps] == ops
    assert replay(registry, entry).still_fails
    fixed = replay(registry, entry, policy=FIXED[policy])
    assert not fixed.still_fails
    assert not any(v.signature == signature for r in fixed.results for v in r.violations)


def test_the_vendor_proposal_is_a_declined_what_if(registry: Registry) -> None:
    """Reference §6 (linux-nvdimm, 2021-02-10): never merged; 13237183c735 kept the Kconfig and the WARN."""
    pol = registry.policy("cxl", "linux-raw-2021-vendor-proposal")
    assert "what if" in pol.doc and "declined" in pol.predates and pol.version.startswith("before 13237183c735")
    e = registry.executor("cxl", pol, registry.device("cxl", "vendor"))
    # an honest vendor read declaring nothing goes through, untainted; a spec opcode does not
    diag = e.apply(Step("user", "ACME_GET_DIAG", {}, "cxl.raw", NOBODY))
    assert diag.decision is not None and diag.decision.allowed and not diag.decision.taint
    ident = e.apply(Step("user", "IDENTIFY", {}, "cxl.raw", NOBODY)).decision
    assert ident is not None and (ident.errno, ident.rule) == (errno.EPERM, "vendor-no-effects")
    # merged behaviour: the same vendor opcode is allowed but taints (dev_WARN_ONCE in cxl_to_mem_cmd_raw())
    merged = registry.executor("cxl", registry.policy("cxl", "linux-raw"), registry.device("cxl", "vendor"))
    d = merged.apply(Step("user", "ACME_RAS_RESTORE", {}, "cxl.raw", NOBODY)).decision
    assert d is not None and d.allowed and d.taint


def test_deprecated_poison_ids_are_enotty_in_7_3_4(registry: Registry) -> None:
    """uapi cxl_mem.h (7.3.4) ``___DEPRECATED(INJECT_POISON, ...)``: mbox.c's cxl_mem_commands[] has no entry,
    so cxl_to_mem_cmd() finds info->id 0 outside enabled_cmds: -ENOTTY.  The 2022 table enabled them from
    the CEL."""
    step = Step("user", "INJECT_POISON", {"dpa": 0}, "cxl.ioctl", NOBODY)
    for policy in ("linux-ioctl", "linux-raw", "linux-fwctl"):
        e = registry.executor("cxl", registry.policy("cxl", policy), registry.device("cxl", "spec"))
        d = e.apply(step).decision
        assert d is not None and (d.errno, d.rule) == (errno.ENOTTY, "enabled-cmds"), policy
    old = registry.executor("cxl", registry.policy("cxl", "linux-raw-poison-allowed"), registry.device("cxl", "spec"))
    d = old.apply(step).decision
    assert d is not None and d.allowed and not d.taint


def test_2021_set_partition_info_was_exclusive_while_the_nvdimm_was_bound(registry: Registry) -> None:
    """drivers/cxl/pmem.c (2021) cxl_pmem_init(): ``set_bit(CXL_MEM_COMMAND_ID_SET_PARTITION_INFO,
    exclusive_cmds)``; mbox.c (2021) had no cxl_payload_from_user_allowed(), so unbound, the immediate
    flag reached the device.  7.3.4 refuses the flag instead, bound or not."""
    e = registry.executor("cxl", registry.policy("cxl", "linux-ioctl-immediate-partition"),
                          registry.device("cxl", "spec"))
    spi = Step("user", "SET_PARTITION_INFO", {"volatile": 1, "immediate": True}, "cxl.ioctl", NOBODY)
    e.apply(Step("kernel", "nvdimm_bind", {}))
    d = e.apply(spi).decision
    assert d is not None and (d.errno, d.rule) == (errno.EBUSY, "exclusive-cmds")
    # ids past GET_SCAN_MEDIA did not exist yet
    ts = e.apply(Step("user", "GET_TIMESTAMP", {}, "cxl.ioctl", NOBODY)).decision
    assert ts is not None and (ts.errno, ts.rule) == (errno.ENOTTY, "ioctl-id-max")
