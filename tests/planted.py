"""The planted holes: Linux policies with one check removed, and the shortest sequence each opens.

Data shared by ``tests/test_planted_holes.py`` (found, shrunk to exactly these
ops, closed by the intact policy) and ``benchmarks/hard_bugs.py`` (time to bug
against a random walk).  A hole's ``ops`` is its known shortest sequence.
"""

from __future__ import annotations

from typing import NamedTuple

#: an op of ``Hole.ops`` that any op may fill
ANY = "*"


class Hole(NamedTuple):
    subsystem: str
    policy: str
    device: str
    rule: str
    signature: str
    ops: list[str]
    #: shortest sequence of 4+ steps: today's Hypothesis search may miss it within
    #: the test budget (tests/test_cxl_deep_holes.py checks it without search)
    deep: bool = False
    #: sequences the test may spend on a shallow hole (0: the default, 1500)
    budget: int = 0
    #: the first ``commute`` ops are independent: a shortest sequence may have them in any order
    commute: int = 0
    #: other shortest sequences, as short and as plain (which one a search meets first is its seed's)
    also: tuple[tuple[str, ...], ...] = ()

    def matches(self, found: list[str]) -> bool:
        """Whether ``found`` (a minimized sequence's ops) is one of this hole's known shortest sequences.

        ``ANY`` stands for any op: where every command shows the hole (a size check gone from the
        transport), the signature names the function and the length is what is known."""
        k = self.commute

        def same(a: list[str], b: list[str]) -> bool:
            return len(a) == len(b) and all(x == y or x == ANY for x, y in zip(a, b, strict=True))

        return any(same(sorted(ops[:k]), sorted(found[:k])) and same(list(ops[k:]), found[k:])
                   for ops in (self.ops, *self.also))


    @property
    def name(self) -> str:
        return f"{self.subsystem}:{self.policy}~{self.rule}-{self.device}"

    @property
    def test_id(self) -> str:
        """The pytest id; a deep hole can share policy, rule and device with a shallow one."""
        base = f"{self.policy}~{self.rule}-{self.device}"
        return f"{base}-{self.ops[-1]}" if self.deep else base


# (subsystem, policy, device, removed rule, signature it opens, shortest ops)
CXL_HOLES = [
    ("linux-ioctl", "spec", "immediate-flag",
     "kernel-owned-integrity:cxl:SET_PARTITION_INFO:partition.active_volatile", ["SET_PARTITION_INFO"]),
    ("linux-ioctl", "spec", "exclusive-cmds",
     "kernel-owned-integrity:cxl:SET_LSA:lsa", ["nvdimm_bind", "SET_LSA"]),
    ("linux-ioctl", "spec", "sanitize-decoders",
     "kernel-owned-integrity:cxl:SANITIZE:media.enabled", ["region_create", "SANITIZE"]),
    ("linux-ioctl", "spec", "sysfs-root", "access:cxl:SANITIZE:caps", ["SANITIZE"]),
    ("linux-fwctl", "spec", "exclusive-features",
     "kernel-owned-integrity:cxl:SET_FEATURE:scrub.cycle_hours:tainted", ["SET_FEATURE"]),
    ("linux-fwctl", "spec", "set-feature-reset-scope", "access:cxl:SET_FEATURE:scope", ["SET_FEATURE"]),
    ("linux-fwctl", "honest-immediate", "set-feature-immediate-scope",
     "access:cxl:SET_FEATURE:caps", ["SET_FEATURE"]),
    ("linux-fwctl", "honest-immediate", "fwctl-rawio-for-full",
     "access:cxl:SET_FEATURE:caps", ["SET_FEATURE"]),
    # fwctl_cmd_rpc()'s ``default: return -EOPNOTSUPP``: an undefined scope (4) passes features.c's
    # ``scope >= FWCTL_RPC_DEBUG_WRITE`` but neither ``case`` that taints
    ("linux-fwctl", "spec", "fwctl-scope-known", "access:cxl:SET_FEATURE:taint", ["SET_FEATURE"]),
    ("linux-raw", "spec", "disabled-raw-commands",
     "kernel-owned-integrity:cxl:SET_LSA:lsa:tainted", ["nvdimm_bind", "SET_LSA"]),
    ("linux-raw", "spec", "security-command-sets",
     "kernel-owned-integrity:cxl:SET_PASSPHRASE:security.state:tainted", ["nvdimm_bind", "SET_PASSPHRASE"]),
    ("linux-raw", "spec", "raw-lockdown", "access:cxl:IDENTIFY:lockdown", ["IDENTIFY"]),
    # Deep holes (4 steps); tests/test_cxl_deep_holes.py has each sequence, why each step is
    # needed, and a bounded exhaustive check that nothing shorter opens the signature.
    # all-ram has no persistent capacity, so no nvdimm, until a partition change (which
    # immediate-flag still forces to wait for a cold reset) gives it some; then SET_LSA.
    ("linux-ioctl", "all-ram", "exclusive-cmds", "kernel-owned-integrity:cxl:SET_LSA:lsa",
     ["SET_PARTITION_INFO", "cold_reset", "nvdimm_bind", "SET_LSA"], True),
    # ...and the same window through RAW, where SET_LSA is in cxl_disabled_raw_commands[]
    ("linux-raw", "all-ram", "disabled-raw-commands", "kernel-owned-integrity:cxl:SET_LSA:lsa:tainted",
     ["SET_PARTITION_INFO", "cold_reset", "nvdimm_bind", "SET_LSA"], True),
    # a passphrase set while no nvdimm owns security, a cold reset that locks the device, the
    # nvdimm binding to a locked DIMM, and a RAW Unlock behind libnvdimm's back
    ("linux-raw", "spec", "security-command-sets", "kernel-owned-integrity:cxl:UNLOCK:security.state:tainted",
     ["SET_PASSPHRASE", "cold_reset", "nvdimm_bind", "UNLOCK"], True),
    # ...and on all-ram, where the nvdimm needs persistent capacity first: a partition change and a passphrase
    # (in either order), one cold reset that both makes the pmem partition live and locks the device, the bind,
    # the Unlock (5 steps: issue 20's depth-5 chain of reset, bind and security state)
    ("linux-raw", "all-ram", "security-command-sets", "kernel-owned-integrity:cxl:UNLOCK:security.state:tainted",
     ["SET_PARTITION_INFO", "SET_PASSPHRASE", "cold_reset", "nvdimm_bind", "UNLOCK"], True, 0, 2),
    # Size holes (tests/test_sizes.py has the rules whose removal opens nothing, and why).
    # cxl_validate_cmd_from_user(): in.size > payload_size gone, memcpy_toio() runs past the mailbox
    ("linux-ioctl", "spec", "payload-max", "out-of-bounds:cxl:__cxl_pci_mbox_send_cmd:mailbox.payload",
     ["SET_LSA"]),
    # cxl_payload_from_user_allowed(): 60b5d1f68338's size check gone, a 1-byte Clear Log is read as a UUID
    # (or a short Set Partition Info as its 9-byte struct: which one the search meets first is the seed's;
    # it moved when the poison commands joined cxl.ioctl with their deprecated ids, and again when
    # issue 20 drew small integers more often)
    ("linux-raw", "spec", "payload-size", "out-of-bounds:cxl:cxl_payload_from_user_allowed:payload_in",
     ["SET_PARTITION_INFO"], False, 0, 0, (("CLEAR_LOG",),)),
    # cxl_to_mem_cmd(): before 60b5d1f68338 its exact-size check was all that kept the ioctl path safe
    # (either of the two commands it looks into shows it; which one the search meets first is the seed's:
    # SET_PARTITION_INFO since issue 20 drew small integers more often)
    ("linux-ioctl-unsized-payload", "spec", "ioctl-size-in",
     "out-of-bounds:cxl:cxl_payload_from_user_allowed:payload_in", ["SET_PARTITION_INFO"], False, 0, 0,
     (("CLEAR_LOG",),)),
    # cxlctl_set_feature(): op_size <= header gone, op_size - header wraps and the copy runs off the request
    # (2800 sequences at the test's seed since every RPC also draws struct fwctl_rpc's size and tail and
    # an undefined scope, which the intact core refuses: issue 17 #20r; 8 seeds: mean 567 -> 796)
    ("linux-fwctl", "spec", "set-feature-op-size", "out-of-bounds:cxl:cxl_set_feature:payload_in",
     ["SET_FEATURE"], False, 4000),
    # 7.3.4's size checks (linux-fwctl-unchecked-sizes has none of them), each shown by removing it:
    # cxlctl_fw_rpc(): in_len against the header and op_size gone, a short request is read past its end
    ("linux-fwctl", "spec", "cxlctl-in-len", "out-of-bounds:cxl:cxlctl_get_supported_features:payload_in",
     ["GET_SUPPORTED_FEATURES"]),
    # cxlctl_get_feature(): count against out_len gone, the mailbox writes past kvzalloc(out_len)
    ("linux-fwctl", "spec", "get-feature-out-len", "out-of-bounds:cxl:cxl_get_feature:rpc_out", ["GET_FEATURE"]),
    # cxlctl_set_feature(): out_len against the answer's header gone, rpc_out->size is written past it.  One feature's
    # UUID and one wrong out_len: seeds 1-10 need up to 2,089 sequences (median 855; 310 with RARE)
    ("linux-fwctl", "spec", "set-feature-out-len", "out-of-bounds:cxl:cxlctl_set_feature:rpc_out", ["SET_FEATURE"],
     False, 4000),
]
RDMA_HOLES = [
    # devx_is_valid_obj_id() gone: any id on your own handle; the lax firmware does not check owners
    ("linux-devx", "lax", "devx-obj-id-valid", "kernel-owned-integrity:rdma:OBJ_MODIFY$cq:cq",
     ["ALLOC_UCONTEXT", "OBJ_CREATE$cq", "OBJ_MODIFY$cq"]),
    # devx_is_general_cmd() gone: DEVX_OTHER carries object commands...
    ("linux-devx", "lax", "devx-general-cmd", "kernel-owned-integrity:rdma:OTHER$object:qp",
     ["ALLOC_UCONTEXT", "OTHER$object"]),
    # ...and creates that nothing destroys on close, whatever the firmware
    ("linux-devx", "spec", "devx-general-cmd", "ucontext-leak:rdma:CLOSE:mkey",
     ["ALLOC_UCONTEXT", "OTHER$object", "CLOSE"]),
    # devx_get_uid()'s -EINVAL gone: a context without DEVX runs commands as uid 0, the kernel
    ("linux-devx", "spec", "devx-uid", "kernel-owned-integrity:rdma:OTHER$reg:reg.PMTU",
     ["ALLOC_UCONTEXT", "OTHER$reg"]),
    # the uid not forced: userspace writes uid 0 into the header itself
    ("linux-devx", "spec", "devx-force-uid", "kernel-owned-integrity:rdma:OTHER$reg:reg.PMTU",
     ["ALLOC_UCONTEXT", "OTHER$reg"]),
    ("linux-devx", "spec", "uctx-caps", "uctx-caps:rdma:ALLOC_UCONTEXT:uctx", ["ALLOC_UCONTEXT"]),
    ("linux-devx", "spec", "devx-obj-create-cmd", "ucontext-leak:rdma:CLOSE:eq",
     ["ALLOC_UCONTEXT", "OBJ_CREATE$eq", "CLOSE"]),
    ("linux-fwctl-mlx5", "spec", "mlx5ctl-default-deny",
     "kernel-owned-integrity:rdma:MODIFY_NIC_VPORT_CONTEXT:nic_vport.mtu", ["MODIFY_NIC_VPORT_CONTEXT"]),
    ("linux-fwctl-mlx5", "spec", "mlx5ctl-write-scope", "access:rdma:SET_DIAGNOSTIC_PARAMS:scope",
     ["SET_DIAGNOSTIC_PARAMS"]),
    ("linux-fwctl-mlx5", "spec", "mlx5ctl-force-uid", "kernel-owned-integrity:rdma:SET_HCA_CAP:hca.caps",
     ["SET_HCA_CAP"]),
    # mlx5ctl_fw_rpc(): in_len below the mailbox header gone, the opcode is read past the request
    # (any command does; which one the search meets first moved when issue 17 #6 and #17 added commands,
    # again when #20r added struct fwctl_rpc's size and tail and the undefined scope to every RPC, and when
    # the fw_fatal_error kernel action came, and when issue 20's state-guided search shared callers per channel)
    ("linux-fwctl-mlx5", "spec", "mlx5ctl-msgsize", "out-of-bounds:rdma:mlx5ctl_fw_rpc:payload_in",
     [ANY]),
]
NETDEV_HOLES = [
    # bnxtctl_validate_rpc()'s "default: return false" gone: the driver's own FUNC_CFG sets the MTU
    ("linux-fwctl-bnxt", "bnxt", "bnxtctl-default-deny", "kernel-owned-integrity:netdev:HWRM_FUNC_CFG:link.mtu",
     ["HWRM_FUNC_CFG"]),
    # pdsfc_validate_rpc()'s -EPERM gone: a DEBUG_WRITE operation at CONFIGURATION, untainted
    ("linux-fwctl-pds", "pds", "pdsfc-scope", "access:netdev:RPC$port.phy_write:scope", ["RPC$port.phy_write"]),
    # mlx5ctl_validate_rpc()'s default gone: the tools uid may modify the NIC vport context (the MAC)
    ("linux-fwctl-mlx5", "mlx5", "mlx5ctl-default-deny",
     "kernel-owned-integrity:netdev:MODIFY_NIC_VPORT_CONTEXT:vport.mac", ["MODIFY_NIC_VPORT_CONTEXT"]),
    # bnxtctl_fw_rpc()'s in_len >= sizeof(struct input) gone: req_type is read past a short message
    # (7.3.4 reads it first in bnxtctl_fw_rpc() itself, for bnxtctl_find_dma_desc())
    # (any command shows it; which one the search meets first is the seed's)
    ("linux-fwctl-bnxt", "bnxt", "bnxtctl-sizes", "out-of-bounds:netdev:bnxtctl_fw_rpc:payload_in",
     [ANY]),
    # 7.3.4 bnxtctl_fw_rpc()'s in_len != desc->req_size gone: bnxtctl_check_dma_lens() reads a DMA
    # command's length field past a request shorter than its struct hwrm_xxx_input
    ("linux-fwctl-bnxt", "bnxt", "bnxtctl-dma-req-size", "out-of-bounds:netdev:bnxtctl_read_len_field:payload_in",
     [ANY]),  # any DMA command (the signature's function is only reached by them); the seed's first
    # pdsfc_fw_rpc()'s in_len check (e7537735028c) gone: rpc->in.len (7.3.4: the max_req_sz check
    # comes first) is read past a short request
    ("linux-fwctl-pds", "pds", "pdsfc-in-len", "out-of-bounds:netdev:pdsfc_validate_rpc:payload_in",
     [ANY]),  # any operation; the seed's first
]
GPU_HOLES = [
    # render node: drm_ioctl_permit()'s DRM_RENDER_ALLOW check gone, a render client opens another
    # client's buffer by its guessable flink name and submits a job that writes it
    ("linux-drm", "spec", "drm-render-allow", "render-isolation:gpu:CS:bo",
     ["OPEN", "other_client", "GEM_OPEN", "CS"], True),
    # primary node: the DRM_MASTER check gone, any client commits a mode
    ("linux-drm", "spec", "drm-master", "drm-master:gpu:MODE_ATOMIC$card:display.mode",
     ["OPEN$card", "MODE_ATOMIC$card"]),
    # reset bookkeeping: a guilty context's submission accepted after the reset
    ("linux-drm", "spec", "cs-guilty-ctx", "reset-bookkeeping:gpu:CS:ctx",
     ["OPEN", "GEM_CREATE", "CS", "gpu_recover", "CS"], True),
    # sysfs: the attribute's owner-only write mode gone, anyone forces a DPM level
    ("linux-drm", "spec", "sysfs-owner-write", "access:gpu:power_dpm_force_performance_level:caps",
     ["power_dpm_force_performance_level"]),
    # sysfs: a partition switch while a client holds VRAM (a primary-node client, OPEN$card and
    # GEM_CREATE$card, is as short; since issue 20's drawing this seed reaches the render node's)
    ("linux-drm", "spec", "partition-kfd-busy", "kernel-owned-integrity:gpu:current_compute_partition:bo",
     ["OPEN", "GEM_CREATE", "current_compute_partition"], False, 0, 0,
     (("OPEN$card", "GEM_CREATE$card", "current_compute_partition"),)),
    # debugfs: root writes a register under lockdown.  7.3.4 guards the files twice (amdgpu creates
    # none under LOCKDOWN_PCI_ACCESS, and debugfs_locked_down() refuses writes), so either check
    # alone closes it (tests/test_gpu.py); the historical policy has debugfs's alone
    ("linux-amdgpu-debugfs-no-pci-lockdown", "spec", "debugfs-lockdown", "lockdown:gpu:amdgpu_regs_smc:clk.sclk_max",
     ["amdgpu_regs_smc"]),
    # debugfs: /sys/kernel/debug open to everyone, an unprivileged user halts the CP
    ("linux-amdgpu-debugfs", "spec", "debugfs-root", "kernel-owned-integrity:gpu:amdgpu_regs:cp.running",
     ["amdgpu_regs"]),
    # gpu fwctl: the power-limit refusal gone: tainted, but the kernel's power cap is wrong
    ("gpu-fwctl", "spec", "refuse-set-power-limit", "kernel-owned-integrity:gpu:SET_POWER_LIMIT:power.cap:tainted",
     ["SET_POWER_LIMIT"]),
    # gpu fwctl: a log-changing RPC below DEBUG_WRITE, so without the taint fwctl.rst asks for
    ("gpu-fwctl", "spec", "gpufw-write-scope", "access:gpu:SET_TRACE_LEVEL:scope", ["SET_TRACE_LEVEL"]),
]
HOLES = ([Hole("cxl", *h) for h in CXL_HOLES] + [Hole("rdma", *h) for h in RDMA_HOLES]
         + [Hole("netdev", *h) for h in NETDEV_HOLES] + [Hole("gpu", *h) for h in GPU_HOLES])
