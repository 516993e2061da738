"""What the loaded plugins registered, indexed: the ``Registry`` every run, replay and export reads.

Apart from ``fuzzer.host`` (which fills it) so that the modules that only read a
registry (``replay``, and through it ``export``, the builtin exporters the host
registers) need not import the plugin manager: host -> export -> replay -> registry
is one direction, not a circle (``tests/test_layers.py``).  ``fuzzer.host.Registry``
is the same class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from fuzzer.errors import UsageError
from fuzzer.executor import Executor
from fuzzer.safetext import shown
from fuzzer.spec import (
    Command,
    DeviceVariant,
    Exporter,
    Invariant,
    Knob,
    Knobs,
    Policy,
    Subsystem,
    undeclared,
)


@attrs.define
class Registry:
    """Everything the loaded plugins registered, indexed and checked."""

    subsystems: dict[str, Subsystem] = attrs.field(factory=dict)
    policies: dict[str, dict[str, Policy]] = attrs.field(factory=dict)
    commands: dict[str, list[tuple[str, Command]]] = attrs.field(factory=dict)
    invariants: list[Invariant] = attrs.field(factory=list)
    #: format name -> subsystem (None: any) -> exporter
    exporters: dict[str, dict[str | None, Exporter]] = attrs.field(factory=dict)
    #: plugin name -> version
    versions: dict[str, str] = attrs.field(factory=dict)
    #: ("subsystem", name) / ("policy", sub, name) / ("device", sub, name) -> plugin name
    provider: dict[tuple[str, ...], str] = attrs.field(factory=dict)
    #: absolute paths of the plugins loaded by path (``--plugin``)
    files: tuple[str, ...] = ()

    # ---------------------------------------------------------------- look-ups

    def subsystem(self, name: str) -> Subsystem:
        try:
            return self.subsystems[name]
        except KeyError:
            raise UsageError(
                f"unknown subsystem {shown(name)}; loaded: {', '.join(sorted(self.subsystems)) or 'none'}"
            ) from None

    def device(self, subsystem: str, name: str | None) -> DeviceVariant:
        sub = self.subsystem(subsystem)
        if name is None:
            return sub.devices[0]
        for d in sub.devices:
            if d.name == name:
                return d
        raise UsageError(
            f"unknown device {shown(name)} for {subsystem}; it has {', '.join(d.name for d in sub.devices)}"
        )

    def policy(self, subsystem: str, name: str | None, without: Sequence[str] = (),
               knobs: Mapping[str, Any] | None = None) -> Policy:
        """The registered policy ``name``, less the rules ``without``, with ``knobs`` set over its own.

        A name the registered policy already lacks (it was registered as
        ``other.without(name)``) is skipped: corpus files written before
        ``without_of`` existed name such rules too.  ``knobs`` values are
        typed (JSON, TOML, or ``Knob.parse`` of a command-line string).
        """
        sub = self.subsystem(subsystem)
        table = self.policies.get(subsystem, {})
        if name is None:
            raise UsageError(f"choose a policy with --policy: {', '.join(sorted(table))}")
        if name not in table:
            raise UsageError(
                f"unknown policy {shown(name)} for {subsystem}; it has {', '.join(sorted(table)) or 'none'}"
            )
        policy = table[name]
        without = [w for w in without if w not in policy.removed]
        if without:
            try:
                policy = policy.without(*without)
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
        if knobs:
            tuned: dict[str, Any] = {}
            for knob_name, value in knobs.items():
                knob = self.knob(subsystem, knob_name)
                try:
                    value = knob.coerce(value)
                except ValueError as exc:
                    raise UsageError(f"knob {knob_name!r} of {subsystem}: {exc}") from None
                if value != policy.knobs[knob_name]:
                    tuned[knob_name] = value
            if tuned:
                own = policy.knobs.own if isinstance(policy.knobs, Knobs) else policy.knobs
                policy = attrs.evolve(policy, knobs=Knobs(sub.knobs, {**own, **tuned}, sub.name),
                                      tuned={**policy.tuned, **tuned})
        return policy

    def knob(self, subsystem: str, name: str) -> Knob:
        """The knob ``name`` that ``subsystem`` declares (UsageError naming the declared ones if none)."""
        sub = self.subsystem(subsystem)
        for k in sub.knobs:
            if k.name == name:
                return k
        raise UsageError(undeclared(name, (k.name for k in sub.knobs), subsystem))

    def without_of(self, policy: Policy) -> tuple[str, ...]:
        """What a corpus file names as removed from ``policy``: what the run removed, not what the
        registered policy of that name already lacked (``Policy.without`` under a new name)."""
        registered = self.policies.get(policy.subsystem, {}).get(policy.name)
        own = registered.removed if registered is not None else ()
        if policy.removed[:len(own)] == own:
            return policy.removed[len(own):]
        return policy.removed

    def exporter(self, name: str, subsystem: str) -> Exporter:
        """The exporter called ``name`` for ``subsystem``'s findings (its own, else a generic one)."""
        by_sub = self.exporters.get(name)
        if by_sub is None:
            raise UsageError(f"unknown export format {shown(name)}; available: {', '.join(sorted(self.exporters))}")
        exp = by_sub.get(subsystem) or by_sub.get(None)
        if exp is None:
            raise UsageError(
                f"export format {shown(name)} exists only for {', '.join(sorted(s for s in by_sub if s))}, "
                f"not for {shown(subsystem)} findings"
            )
        return exp

    def executor(self, subsystem: str, policy: Policy, device: DeviceVariant, *, trace: bool = False) -> Executor:
        sub = self.subsystem(subsystem)
        extra = [c for dev, c in self.commands.get(subsystem, []) if dev in ("", device.name)]
        return Executor(sub, policy, device, extra_commands=extra, invariants=self.invariants,
                        provider=self.provider, trace=trace)

    def plugin_versions(self, subsystem: str) -> dict[str, str]:
        """Versions of the plugins that contributed to ``subsystem`` (for corpus files)."""
        names = {p for key, p in self.provider.items() if len(key) > 1 and key[1] == subsystem}
        names.add(self.provider.get(("subsystem", subsystem), ""))
        return {n: self.versions[n] for n in sorted(names) if n}

