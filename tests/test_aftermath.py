"""Issue 19 (points 1, 2, 3, 7): a policy's aftermath, on a small subsystem defined here.

``vault`` is a disk shelf whose driver does what the NVMe maintainer needed:

* its only disk handle comes from the **probe** (``world.publish``), so a
  command that takes a disk can be drawn only if the searches seed their
  bundles from it;
* spares appear only through a **reaction**: after ``ADD_SPARE`` the driver
  adopts the new spare and publishes its handle, the only producer of
  ``spares``;
* the reactions filter on the **kernel's cached effects table**
  (``Subsystem.kernel_effects``), which disagrees with what the device
  declares: ``ADD_SPARE`` declares nothing, ``PING`` declares a spare;
* root is **trusted** with the disk's data and nothing else, so a kernel bug
  on the same step (the cache mode it forgets to re-read) is still a hole.
"""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from fuzzer import (
    ALWAYS,
    BELIEVED,
    Args,
    Caller,
    CallerSpace,
    Channel,
    Command,
    Deny,
    Device,
    DeviceVariant,
    Effect,
    Field,
    Firmware,
    KernelAction,
    Param,
    Policy,
    Reaction,
    Reply,
    Request,
    Rule,
    Step,
    Subsystem,
    Trust,
    Verdict,
    World,
    corpus,
    hookimpl,
    host,
)
from fuzzer.campaign import Campaign
from fuzzer.errors import ModelError
from fuzzer.minimize import is_one_minimal, one_minimal
from fuzzer.replay import replay, trace

CTL = "vault.ctl"
ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}))
USER = Caller()
#: the vault's own effect bits
ERASE = 1 << 16
NEW_SPARE = 1 << 17
KERNEL_OWNED = "kernel-owned-integrity"

# --------------------------------------------------------------------------- the device


def initial_state() -> dict[str, Any]:
    return {"disk:0": "data", "cache.mode": "write-back", "spares": 0}


def wipe(dev: Device, args: Args) -> Reply:
    """Erasing a disk also drops the controller's cache to write-through (the kernel must re-read it)."""
    dev.state[f"disk:{args['disk']}"] = "zeros"
    dev.state["cache.mode"] = "write-through"
    return Reply()


def add_spare(dev: Device, args: Args) -> Reply:
    n = dev.state["spares"]
    dev.state[f"spare:{n}"] = "blank"
    dev.state["spares"] = n + 1
    return Reply()


def format_spare(dev: Device, args: Args) -> Reply:
    key = f"spare:{args['spare']}"
    if key not in dev.state:
        return Reply(rc=2, why="no such spare")
    dev.state[key] = "formatted"
    return Reply()


def ping(dev: Device, args: Args) -> Reply:
    return Reply()


def read_cache(dev: Device, args: Args) -> Reply:
    return Reply(out={"mode": dev.state["cache.mode"]})


# --------------------------------------------------------------------------- the kernel


def boot() -> dict[str, Any]:
    # the effects table the driver caches at probe: it knows ADD_SPARE adds a spare, whatever
    # the device says, and that PING does nothing
    return {"effects": {}, "spares": (), "note": ""}


#: what the driver's table says (the device's own declarations differ for ADD_SPARE and PING)
CACHED = {"WIPE": ERASE | int(Effect.CONFIG_IMMEDIATE), "ADD_SPARE": NEW_SPARE, "PING": 0}


def probe(world: World) -> None:
    world.kernel["effects"] = dict(CACHED)
    world.believe("disk:0", "cache.mode")
    world.publish("disks", "disk0")


def kernel_effects(request: Request) -> int | None:
    """The cached table; None for a command it has no entry for (the declared effects count)."""
    effects: dict[str, int] = request.kernel["effects"]
    return effects.get(request.command.op)


def by_handle(prefix: str, fw_op: str, arg: str) -> Any:
    def driver(world: World, args: Args, caller: Caller) -> Reply:
        name = str(args[arg])
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            return Reply(errno=errno.EBADF, why=f"stale {arg} handle")
        return world.mailbox(fw_op, **{arg: int(name[len(prefix):])})

    return driver


def note(world: World, args: Args) -> Reply:
    """A kernel action that (wrongly) tries to publish through the world."""
    world.publish("disks", "disk9")
    return Reply()


SUBSYSTEM = Subsystem(
    "vault",
    fields=(
        Field("disk", ERASE, BELIEVED, family=True, doc="a disk the kernel exposes (and a filesystem trusts)"),
        Field("cache.mode", Effect.CONFIG_IMMEDIATE, ALWAYS, doc="the driver caches the cache mode"),
        Field("spares", Effect.NONE, doc="a counter the shelf keeps"),
        Field("spare", Effect.NONE, BELIEVED, family=True, doc="spares the kernel adopted"),
    ),
    channels=(Channel(CTL, "the shelf's control node", callers=CallerSpace(caps=(frozenset(), ROOT.caps))),),
    commands=(
        Command("WIPE", 0x01, (CTL,), driver=by_handle("disk", "ERASE", "disk"),
                effects=ERASE | int(Effect.CONFIG_IMMEDIATE), params=(Param("disk", "handle", bundle="disks"),)),
        Command("ADD_SPARE", 0x02, (CTL,), add_spare),  # declares nothing; the kernel knows better
        Command("FORMAT_SPARE", 0x03, (CTL,), driver=by_handle("spare", "FORMAT", "spare"),
                params=(Param("spare", "handle", bundle="spares"),)),
        Command("PING", 0x04, (CTL,), ping, effects=NEW_SPARE),  # says it adds a spare; the kernel knows not
    ),
    firmware=(Firmware("ERASE", 0x11, wipe), Firmware("FORMAT", 0x12, format_spare),
              Firmware("READ_CACHE", 0x13, read_cache)),
    devices=(DeviceVariant("shelf", initial_state),),
    actions=(),
    kernel=boot,
    probe=probe,
    effects={ERASE: "erase", NEW_SPARE: "new-spare"},
    kernel_effects=kernel_effects,
    steps=6,
)

# --------------------------------------------------------------------------- the policy


def root_only(r: Request) -> Verdict:
    return None if "CAP_SYS_ADMIN" in r.caller.caps else Deny(errno.EPERM, "needs CAP_SYS_ADMIN")


def reread_cache(world: World, request: Request, reply: Reply) -> None:
    """After an erase the driver re-reads the cache mode (the reaction a planted hole removes)."""
    world.mailbox("READ_CACHE")
    world.believe("cache.mode")


def adopt_spares(world: World, request: Request, reply: Reply) -> None:
    """The driver adopts every new spare, believes it and publishes its handle."""
    n = world.device.state["spares"]
    new = [i for i in range(n) if f"spare:{i}" not in world.shadow]
    world.believe(*(f"spare:{i}" for i in new))
    world.kernel["spares"] = tuple(range(n))
    world.kernel["note"] = "\x1b[2J" + "A" * 300  # hostile text in the kernel model: a trace escapes and cuts it
    world.publish("spares", *(f"spare{i}" for i in new))


POLICY = Policy(
    "vault-linux", "vault", channels=(CTL,),
    rules=(Rule("root-wipe", root_only, "vault.c vault_wipe()", ops=("WIPE",)),
           Rule("root-format", root_only, "vault.c vault_format()", ops=("FORMAT_SPARE",))),
    reactions=(Reaction("reread-cache", reread_cache, "vault.c vault_after()", effects=ERASE),
               Reaction("adopt-spare", adopt_spares, "vault.c vault_adopt()", effects=NEW_SPARE,
                        produces="spares")),
    trusts=(Trust(ROOT.caps, "vault.c: root may erase a disk", ops=("WIPE",),
                  invariants=(KERNEL_OWNED,), fields=("disk",), reason="erasing is what root asked for"),
            Trust(ROOT.caps, "vault.c: root may format a spare", ops=("FORMAT_SPARE",),
                  invariants=(KERNEL_OWNED,), fields=("spare",))),
    kernel="unversioned",
)


@hookimpl
def _subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def _policies() -> list[Policy]:
    return [POLICY]


VAULT = SimpleNamespace(__name__="vault", __version__="0.1.0", ptfuzz_subsystems=_subsystems,
                        ptfuzz_policies=_policies)


@pytest.fixture(scope="module")
def reg() -> host.Registry:
    return host.load(extra=[VAULT])


def executor(reg: host.Registry, *without: str, policy: Policy | None = None, trace: bool = False) -> Any:
    pol = policy if policy is not None else reg.policy("vault", "vault-linux", without)
    return reg.executor("vault", pol, reg.device("vault", None), trace=trace)


def own(subsystem: Subsystem) -> host.Registry:
    """A registry of one variant of the vault, as if plugin ``vault`` registered it."""
    return host.Registry(subsystems={"vault": subsystem}, policies={"vault": {POLICY.name: POLICY}},
                         provider={("subsystem", "vault"): "vault", ("policy", "vault", POLICY.name): "vault"})


def user(op: str, caller: Caller = ROOT, **args: object) -> Step:
    return Step("user", op, args, CTL, caller)


def severities(result: Any) -> dict[str, str]:
    return {v.field: v.severity for v in result.violations}


def campaign(reg: host.Registry, tmp_path: Path, *without: str, search: str = "native",
             policy: Policy | None = None, target: str | None = None) -> Any:
    pol = policy if policy is not None else reg.policy("vault", "vault-linux", without)
    return Campaign(reg, "vault", pol, reg.device("vault", None), seed=19, max_examples=400,
                    corpus_dir=tmp_path, search=search, targets=frozenset({target}) if target else None)


# --------------------------------------------------------------------------- 1. Trust names its findings


def test_a_trust_covers_the_findings_it_names_and_a_step_can_carry_a_hole_beside_one(reg: host.Registry) -> None:
    # intact: root's wipe destroys the disk's data (trusted) and the kernel re-reads the cache
    assert severities(executor(reg).apply(user("WIPE", disk="disk0"))) == {"disk": "trusted"}
    # the planted kernel bug: no re-read; the same step now also carries a hole
    holed = executor(reg, "reread-cache").apply(user("WIPE", disk="disk0"))
    assert severities(holed) == {"disk": "trusted", "cache.mode": "hole"}
    # a trust names what it covers: the invariant or the field alone must match too
    wrong_field = attrs.evolve(POLICY, trusts=(attrs.evolve(POLICY.trusts[0], fields=("cache.mode",)),))
    assert wrong_field.trusts_for(CTL, "WIPE", ROOT) == wrong_field.trusts  # the step is covered, not the finding
    assert severities(executor(reg, policy=wrong_field).apply(user("WIPE", disk="disk0"))) == {"disk": "hole"}
    wrong_invariant = attrs.evolve(POLICY, trusts=(attrs.evolve(POLICY.trusts[0], invariants=("access",)),))
    assert severities(executor(reg, policy=wrong_invariant).apply(user("WIPE", disk="disk0"))) == {"disk": "hole"}


def test_the_planted_hole_the_old_whole_step_trust_masked_is_found_and_shrunk(reg: host.Registry,
                                                                              tmp_path: Path) -> None:
    sig = f"{KERNEL_OWNED}:vault:WIPE:cache.mode"
    holed = reg.policy("vault", "vault-linux", ("reread-cache",))
    # the old Trust (no invariants, no fields: the whole step) hides it: the run would exit 0
    whole = attrs.evolve(holed, trusts=(attrs.evolve(holed.trusts[0], invariants=(), fields=()), holed.trusts[1]))
    masked = campaign(reg, tmp_path / "masked", policy=whole).run()
    assert f"{sig}:trusted" in masked.findings and masked.failing() == []
    # named findings: the same step's stale cache mode fails the run, shrunk to the one wipe
    found = campaign(reg, tmp_path / "named", "reread-cache", target=sig).run()
    assert [f.violation.signature for f in found.failing()] == [sig]
    assert [s.op for s in found.findings[sig].steps] == ["WIPE"]
    assert f"{KERNEL_OWNED}:vault:WIPE:disk:trusted" in found.findings
    # and the intact policy closes it
    assert campaign(reg, tmp_path / "intact").run().failing() == []


def test_a_bare_string_where_names_are_meant_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"ops='WIPE' is a string; pass a tuple of names: ops=\('WIPE',\)"):
        Trust(ROOT.caps, "c", ops="WIPE")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"fields=\('disk',\)"):
        Trust(ROOT.caps, "c", fields="disk")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Reaction\('r'\): channels='vault.ctl' is a string"):
        Reaction("r", reread_cache, "c", channels=CTL)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Reaction\('r'\): produces must be names \(strings\), got \[1\]"):
        Reaction("r", reread_cache, "c", produces=(1,))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 2. the kernel's view of effects


def test_a_reaction_fires_on_the_kernels_cached_effects_although_the_device_declares_none(
        reg: host.Registry) -> None:
    ex = executor(reg)
    r = ex.apply(user("ADD_SPARE"))
    assert r.declared == 0 and r.kernel_effects == NEW_SPARE
    assert r.reactions == ("adopt-spare",) and ex.world.shadow["spare:0"] == "blank"


def test_a_reaction_does_not_fire_when_the_kernels_copy_says_no_whatever_the_device_declares(
        reg: host.Registry) -> None:
    r = executor(reg).apply(user("PING"))
    assert r.declared == NEW_SPARE and r.kernel_effects == 0 and r.reactions == ()


def test_without_a_cached_entry_or_a_hook_the_declared_effects_count(reg: host.Registry) -> None:
    # FORMAT_SPARE has no entry in the kernel's table: its declared effects (none) are the filter
    ex = executor(reg)
    ex.apply(user("ADD_SPARE"))
    assert ex.apply(user("FORMAT_SPARE", spare="spare0")).kernel_effects == 0
    # a subsystem without kernel_effects: reactions see what the device declares, as before
    ex = own(attrs.evolve(SUBSYSTEM, kernel_effects=None)).executor("vault", POLICY, SUBSYSTEM.devices[0])
    add, ping_ = ex.apply(user("ADD_SPARE")), ex.apply(user("PING"))
    assert add.reactions == () and add.kernel_effects == 0
    assert ping_.reactions == ("adopt-spare",) and ping_.kernel_effects == NEW_SPARE


def test_a_kernel_effects_hook_that_answers_nonsense_is_blamed_on_its_plugin(reg: host.Registry) -> None:
    broken = own(attrs.evolve(SUBSYSTEM, kernel_effects=lambda r: "NEW_SPARE"))
    ex = broken.executor("vault", POLICY, SUBSYSTEM.devices[0])
    with pytest.raises(ModelError, match=r"plugin 'vault': Subsystem.kernel_effects returned str 'NEW_SPARE', "
                                         r"not an effect mask \(int\) or None, in step 1 \(user"):
        ex.apply(user("ADD_SPARE"))


# --------------------------------------------------------------------------- 3. the probe and reactions publish


@pytest.mark.parametrize("search", ["native", "hypothesis"])
def test_a_handle_only_the_probe_publishes_is_drawn_and_the_planted_hole_found(reg: host.Registry, tmp_path: Path,
                                                                                search: str) -> None:
    sig = f"{KERNEL_OWNED}:vault:WIPE:disk"
    c = campaign(reg, tmp_path, "root-wipe", search=search, target=sig)
    finding = c.run().findings[sig]
    assert [(s.op, dict(s.args)) for s in finding.steps] == [("WIPE", {"disk": "disk0"})]
    assert finding.steps[0].caller == USER
    assert replay(reg, corpus.load(finding.path)).still_fails


@pytest.mark.parametrize("search", ["native", "hypothesis"])
def test_a_handle_only_a_reaction_publishes_is_drawn_and_the_planted_hole_found(reg: host.Registry,
                                                                                 tmp_path: Path, search: str) -> None:
    sig = f"{KERNEL_OWNED}:vault:FORMAT_SPARE:spare"
    c = campaign(reg, tmp_path, "root-format", search=search, target=sig)
    finding = c.run().findings[sig]
    assert [s.op for s in finding.steps] == ["ADD_SPARE", "FORMAT_SPARE"]
    assert finding.steps[1].args == {"spare": "spare0"}
    assert is_one_minimal(c.executor, finding.steps, sig)
    entry = corpus.load(finding.path)
    assert replay(reg, entry).still_fails
    assert not replay(reg, entry, without=()).still_fails


def test_the_minimizer_relinks_a_handle_a_reaction_published(reg: host.Registry) -> None:
    """Dropping the first ADD_SPARE renames the second's spare; the later reference follows it."""
    sig = f"{KERNEL_OWNED}:vault:FORMAT_SPARE:spare"
    ex = executor(reg, "root-format")
    steps = [user("ADD_SPARE"), user("ADD_SPARE"), user("FORMAT_SPARE", USER, spare="spare1")]
    assert [r.published for r in ex.run(steps)] == [("spare0",), ("spare1",), ()]
    assert one_minimal(ex, steps, sig) == [user("ADD_SPARE"), user("FORMAT_SPARE", USER, spare="spare0")]


def test_the_searches_start_every_sequence_with_the_probes_handles(reg: host.Registry, tmp_path: Path) -> None:
    c = campaign(reg, tmp_path)
    c.run()
    assert c.executor.probed == (("disks", "disk0"),)
    assert c.explorer is not None and c.explorer.probed() == {"disks": ["disk0"]}
    drawn = {c.explorer.moves[move].op for move, *_ in c.explorer.behaviours}
    assert {"WIPE", "FORMAT_SPARE"} <= drawn


def test_publishing_where_no_search_could_see_it_is_a_model_error(reg: host.Registry) -> None:
    # a kernel action publishes through its Reply, not the world
    noting = attrs.evolve(SUBSYSTEM, actions=(KernelAction("note", note),))
    with pytest.raises(ModelError, match=r"plugin 'vault': world.publish\('disks'\) outside the probe or a "
                                         r"reaction: .*Reply\(handles=...\) and declaring produces='disks'"):
        own(noting).executor("vault", POLICY, SUBSYSTEM.devices[0]).apply(Step("kernel", "note", {}))
    # a reaction publishes only into the bundles it names in produces=
    sloppy = attrs.evolve(POLICY, reactions=(attrs.evolve(POLICY.reactions[1], produces=""),))
    with pytest.raises(ModelError, match=r"^plugin 'vault': reaction 'adopt-spare': world.publish\('spares'\) into a "
                                         r"bundle the reaction does not name: add 'spares' to its produces= \(it "
                                         r"names \[\]\) in step 1 \(user   vault.ctl ADD_SPARE\(\) as CAP_SYS_ADMIN\)$"):
        executor(reg, policy=sloppy).apply(user("ADD_SPARE"))

    # a handle a corpus file could not store
    def odd(world: World, request: Request, reply: Reply) -> None:
        world.publish("spares", ("spare", 0))

    tuple_handle = attrs.evolve(POLICY, reactions=(attrs.evolve(POLICY.reactions[1], run=odd),))
    with pytest.raises(ModelError, match=r"world.publish\('spares', ...\): a handle is a string or an int .*"
                                         r"got tuple \('spare', 0\)"):
        executor(reg, policy=tuple_handle).apply(user("ADD_SPARE"))

    # the probe publishes only into a bundle some parameter takes
    def typo(world: World) -> None:
        world.publish("disk", "disk0")

    broken = own(attrs.evolve(SUBSYSTEM, probe=typo))
    with pytest.raises(ModelError, match=r"^plugin 'vault': probe: world.publish\('disk'\) into a bundle no "
                                         r"parameter takes; the subsystem's handle bundles are \['disks', 'spares'\]$"):
        broken.executor("vault", POLICY, SUBSYSTEM.devices[0])


# --------------------------------------------------------------------------- 7. what a reaction changed, traced


def test_a_trace_says_what_each_reaction_changed_in_the_kernel_model(reg: host.Registry, tmp_path: Path) -> None:
    steps = (user("ADD_SPARE"), user("PING"), user("WIPE", disk="disk0"))
    entry = corpus.Entry("vault", "shelf", "vault-linux", steps,
                         {"invariant": KERNEL_OWNED, "step": 3, "field": "disk", "message": "",
                          "signature": f"{KERNEL_OWNED}:vault:WIPE:disk:trusted"},
                         plugins={"vault": "0.1.0"})
    path = tmp_path / "f.json"
    corpus.write(path, entry)
    rep = replay(reg, corpus.load(path))
    lines = trace(rep)
    assert lines == trace(replay(reg, corpus.load(path)))  # deterministic
    text = "\n".join(lines)
    # what the kernel computed (its copy, and that the device said otherwise), then what it changed
    assert "      kernel effects  new-spare (the device declared none)\n" in text
    assert "      kernel reacted  adopt-spare\n" in text
    assert "          kernel spares: () -> (0,)\n" in text
    assert "          believes spare:0: (nothing) -> 'blank'\n" in text
    assert "          published 'spare0' into spares\n" in text
    assert "      kernel skipped  reread-cache (reacts to erase)\n" in text
    # PING: the kernel's copy says no effect, so neither reaction runs
    assert "      kernel effects  none (the device declared new-spare)\n      kernel skipped  reread-cache" in text
    # a reaction that re-believes what the command changed, and nothing else
    assert ("      kernel reacted  reread-cache\n"
            "          believes cache.mode: 'write-back' -> 'write-through'\n") in text
    # values from the kernel model are escaped and cut (fuzzer.safetext)
    note = next(line for line in lines if line.startswith("          kernel note: "))
    assert "\\x1b[2J" in note and "\x1b" not in note and len(note) < 130 and "chars)" in note
