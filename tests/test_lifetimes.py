"""Lifetimes: the memory oracle's allocations and frees, a planted hole per kind, and 7f059e473267.

Each planted hole is the fwctl path with one line of its freeing changed (a
function below replaces the real one for the test): the fuzzer must find it,
shrink it to its known shortest sequence, and the real code must not show it.
Each also checks that only its own invariant sees the hole, so the test fails
if the oracle ignores that kind.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from ptfuzz_cxl import mailbox as mb
from ptfuzz_mlx5 import fwctl as mlx5_fwctl

from fuzzer import Buffer, Forward, Reply, Request, World, corpus, fwctl, lifetimes
from fuzzer.campaign import Campaign
from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.minimize import first_hit, is_one_minimal
from fuzzer.replay import replay
from fuzzer.spec import Caller
from fuzzer.world import Step

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "rdma"
HISTORICAL = "linux-fwctl-mlx5-kfree-rpc-out"
KFREE = "invalid-free:rdma:mlx5ctl_fw_rpc:rpc_out"
KFREE_FILE = CORPUS / f"{HISTORICAL}--spec--invalid-free--mlx5ctl_fw_rpc--rpc_out.json"
REAL_FW_RPC = mlx5_fwctl.fw_rpc


# ----------------------------------------------------------------------------- the accessor


def test_a_buffer_logs_its_life_in_order_and_judges_each_free() -> None:
    b = Buffer("rpc_out", 16).allocated("kvzalloc", by="f(): kvzalloc")
    b.write(0, 4, by="g()")
    b.free("kvfree", by="h(): kvfree")
    b.read(0, 4, by="i()")
    b.free("kvfree", by="j(): kvfree")
    assert [(a.op, a.lifetime) for a in b.log] == [
        ("alloc", ""), ("write", ""), ("free", ""), ("read", "use-after-free"), ("free", "double-free")]
    assert b.log[3].describe() == ("use-after-free read of 4 bytes at offset 0 of rpc_out "
                                   "(freed in h(): kvfree) in i()")
    assert not b.log[3].out_of_bounds and not b.live


@pytest.mark.parametrize(("allocator", "size", "freer", "fault"), [
    ("kzalloc", 1 << 20, "kfree", ""),
    ("kzalloc", 64, "vfree", "invalid-free"),
    ("vzalloc", 64, "kfree", "invalid-free"),
    ("vzalloc", 64, "kvfree", ""),
    # __kvmalloc_node_noprof() (mm/slub.c, 7.3.4): never vmalloc at PAGE_SIZE or below, so kfree() works
    ("kvzalloc", lifetimes.PAGE_SIZE, "kfree", ""),
    ("kvzalloc", lifetimes.PAGE_SIZE + 1, "kfree", "invalid-free"),
    ("kvzalloc", lifetimes.PAGE_SIZE + 1, "kvfree", ""),
    ("", 16, "kvfree", "invalid-free"),  # the caller's memory, or a buffer nobody allocated
])
def test_which_free_frees_what(allocator: lifetimes.Allocator, size: int, freer: lifetimes.Freer, fault: str) -> None:
    b = Buffer("x", size)
    if allocator:
        b.allocated(allocator, by="f()")
    b.free(freer, by="g()")
    assert b.log[-1].lifetime == fault
    # an invalid free changes nothing: the kernel WARNs and returns, the memory stays allocated
    assert b.live == (fault == "invalid-free" and bool(allocator))


# ----------------------------------------------------------------------------- planted holes


def _uaf_fw_rpc(world: World, request: Request, forward: Forward, rpc_in: Buffer) -> tuple[Reply, Buffer | None]:
    """Planted use-after-free: frees rpc_out on -EREMOTEIO too ("if (ret)"), and returns it anyway."""
    reply, rpc_out = REAL_FW_RPC(world, request, forward, rpc_in)
    if rpc_out is not None and rpc_out is not rpc_in and reply.rc:
        rpc_out.free("kvfree", by="mlx5ctl_fw_rpc(): kvfree(rpc_out) on -EREMOTEIO")
    return reply, rpc_out


def _leaky_fw_rpc(world: World, request: Request, forward: Forward, rpc_in: Buffer) -> tuple[Reply, Buffer | None]:
    """Planted leak: the error path returns ERR_PTR(ret) without freeing rpc_out."""
    if request.kernel.get(mlx5_fwctl.CMD_DOWN):
        if request.size("out_len") > request.size("in_len"):
            world.buffer("rpc_out", request.size("out_len"), allocator="kvzalloc",
                         by="mlx5ctl_fw_rpc(): rpc_out = kvzalloc(*out_len)")
        return Reply(errno=errno.ENXIO), None
    return REAL_FW_RPC(world, request, forward, rpc_in)


def _no_inbuf_guard_rpc(world: World, request: Request, fw_rpc: fwctl.FwRpc) -> Reply:
    """Planted double free: fwctl_cmd_rpc() without ``if (outbuf == inbuf) inbuf = NULL``."""
    inbuf = request.payload
    assert inbuf is not None
    inbuf.allocated("kvzalloc", by="fwctl_cmd_rpc(): inbuf = kvzalloc(cmd->in_len)")
    reply, outbuf = fw_rpc(inbuf)
    if outbuf is not None:
        outbuf.free("kvfree", by="fwctl_cmd_rpc(): outbuf __free(kvfree)")
    inbuf.free("kvfree", by="fwctl_cmd_rpc(): inbuf __free(kvfree)")
    return reply


# (kind, the function it replaces, the planted one, signature, shortest ops)
PLANTED = [
    ("use-after-free", "fw_rpc", _uaf_fw_rpc, "use-after-free:rdma:fwctl_cmd_rpc:rpc_out", 1),
    ("double-free", "rpc", _no_inbuf_guard_rpc, "double-free:rdma:fwctl_cmd_rpc:payload_in", 1),
    ("leak", "fw_rpc", _leaky_fw_rpc, "leak:rdma:mlx5ctl_fw_rpc:rpc_out", 2),
]


def _only_this_kind_sees_it(executor: Executor, steps: list[Step], kind: str) -> None:
    """With the kind's invariant gone, no other invariant reports anything: the test needs that kind."""
    blind = executor.invariants
    try:
        executor.invariants = tuple(i for i in blind if i.name != kind)
        executor.reset()
        assert not [v.signature for s in steps for v in executor.apply(s).violations]
    finally:
        executor.invariants = blind


@pytest.mark.parametrize(("kind", "replaces", "planted", "signature", "length"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_lifetime_hole_is_found_and_shrunk(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    kind: str, replaces: str, planted: object, signature: str, length: int,
) -> None:
    owner = mlx5_fwctl if replaces == "fw_rpc" else fwctl
    monkeypatch.setattr(owner, replaces, planted)
    campaign = Campaign(registry, "rdma", registry.policy("rdma", "linux-fwctl-mlx5"), registry.device("rdma", "spec"),
                        seed=20261206, max_examples=3000, corpus_dir=tmp_path, targets=frozenset({signature}))
    result = campaign.run()
    assert signature in result.findings, sorted(result.findings)
    steps = result.findings[signature].steps
    assert len(steps) == length, [s.describe() for s in steps]
    last = steps[-1]
    assert last.channel == "rdma.fwctl"
    if kind != "double-free":  # rpc_out is kvzalloc'd only when the answer does not fit in place
        assert last.args["out_len"] > last.args["in_len"]
    if kind == "leak":  # mlx5ctl_fw_rpc()'s error path: mlx5_cmd_do() failed (-ENXIO)
        assert steps[0].op == "fw_fatal_error"
    assert is_one_minimal(campaign.executor, steps, signature)
    _only_this_kind_sees_it(campaign.executor, steps, kind)
    monkeypatch.undo()  # the code as 7.3.4 has it
    intact = registry.executor("rdma", registry.policy("rdma", "linux-fwctl-mlx5"), registry.device("rdma", "spec"))
    intact.reset()
    assert not [v.signature for s in steps for v in intact.apply(s).violations]


# ----------------------------------------------------------------------------- 7f059e473267


def test_the_kfree_of_rpc_out_is_found_and_shrunk(registry: Registry, tmp_path: Path) -> None:
    """mlx5ctl_fw_rpc() before 7f059e473267 (drivers/fwctl/mlx5/main.c; 7.3.4 has the fix):
    ``kfree(rpc_out)`` on mlx5_cmd_do()'s error, for a kvzalloc(*out_len) above PAGE_SIZE."""
    campaign = Campaign(registry, "rdma", registry.policy("rdma", HISTORICAL), registry.device("rdma", "spec"),
                        seed=1, max_examples=3000, corpus_dir=tmp_path, targets=frozenset({KFREE}))
    result = campaign.run()
    assert KFREE in result.findings, sorted(result.findings)
    steps = result.findings[KFREE].steps
    assert len(steps) == 2 and steps[0].op == "fw_fatal_error"
    assert steps[1].args["out_len"] > max(steps[1].args["in_len"], lifetimes.PAGE_SIZE)
    assert is_one_minimal(campaign.executor, steps, KFREE)
    _only_this_kind_sees_it(campaign.executor, steps, "invalid-free")


def test_the_kfree_finding_is_in_the_corpus_and_the_fix_closes_it(registry: Registry) -> None:
    entry = corpus.load(KFREE_FILE)
    assert entry.signature == KFREE and len(entry.steps) == 2 and entry.steps[0].op == "fw_fatal_error"
    # any command the table lets through at CONFIGURATION, by any user who can open the node
    assert entry.steps[1].op in mlx5_fwctl.FWCTL_ANY and entry.steps[1].caller == Caller(scope="configuration")
    assert entry.steps[1].args["out_len"] == lifetimes.PAGE_SIZE + 1  # shrunk to the boundary
    assert replay(registry, entry).still_fails
    assert not replay(registry, entry, policy="linux-fwctl-mlx5").still_fails
    # at PAGE_SIZE kvzalloc() never falls back to vmalloc, and kfree() frees it: no finding
    ex = registry.executor("rdma", registry.policy("rdma", HISTORICAL), registry.device("rdma", "spec"))
    small = [entry.steps[0], Step("user", entry.steps[1].op, {**entry.steps[1].args, "out_len": lifetimes.PAGE_SIZE},
                                  "rdma.fwctl", Caller(scope="configuration"))]
    assert first_hit(ex, small, KFREE) is None


def test_the_fixed_fwctl_paths_free_what_they_allocate(registry: Registry, tmp_path: Path) -> None:
    """7.3.4's mlx5 and CXL fwctl paths: no lifetime finding in a campaign that draws large out_lens."""
    kinds = set(lifetimes.FAULTS)
    for subsystem, policy, device in (("rdma", "linux-fwctl-mlx5", "spec"), ("cxl", "linux-fwctl", "spec")):
        result = Campaign(registry, subsystem, registry.policy(subsystem, policy), registry.device(subsystem, device),
                          seed=2, max_examples=1500, corpus_dir=tmp_path).run()
        assert not {s for s in result.findings if s.split(":")[0] in kinds}, (policy, sorted(result.findings))


def test_cxl_rpc_out_is_kvzalloced_and_kvfreed_by_the_core(registry: Registry) -> None:
    """cxlctl_get_feature() (drivers/cxl/core/features.c, 7.3.4): ``rpc_out __free(kvfree) = kvzalloc(out_size)``,
    handed over with no_free_ptr(); fwctl_cmd_rpc() kvfree()s it and the request."""
    ex = registry.executor("cxl", registry.policy("cxl", "linux-fwctl"), registry.device("cxl", "spec"))
    ex.reset()
    step = Step("user", "GET_FEATURE", {"uuid": mb.TEST_FEATURE_UUID, "count": 4, "out_len": 8 + 4}, "cxl.fwctl",
                Caller(scope="configuration"))
    result = ex.apply(step)
    assert not result.violations
    life = [(a.buffer, a.op, a.lifetime) for a in ex.world.accesses if a.op in ("alloc", "free")]
    assert life == [("payload_in", "alloc", ""), ("rpc_out", "alloc", ""), ("rpc_out", "free", ""),
                    ("payload_in", "free", "")]
