"""``ptfuzz live``: the real kernel as the judge.

    ptfuzz live kernels                          what can be built, what is cached
    ptfuzz live build [NAME ...]                 build (or reuse) kernels
    ptfuzz live run FILES --kernel 7.3           corpus files on a kernel, model beside it
    ptfuzz live conformance --policy linux-raw   generated sequences on both; disagreements saved

Exit codes as everywhere: 0 all agree (or every disagreement is a known
difference), 1 a disagreement or a kernel crash, 2 bad input, 3 a bug.
A guest that cannot be booted is exit 2 with the reason (a missing tool,
a failed build, QEMU's own message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fuzzer.harness import Registry, UsageError, expand_corpus, load_plugins, safe_line, shown, write_output
from ptfuzz_cxl.live import kernels, runner, tools
from ptfuzz_cxl.live.guest import GuestError
from ptfuzz_cxl.live.target import LiveStep

EXIT_CLEAN, EXIT_FOUND = 0, 1


def _build(name: str) -> kernels.Kernel:
    try:
        return kernels.KERNELS[name]
    except KeyError:
        raise UsageError(f"unknown kernel {shown(name)}; ptfuzz knows {', '.join(kernels.KERNELS)} "
                         f"(ptfuzz live kernels)") from None


def _registry(ctx: click.Context) -> Registry:
    obj = ctx.find_root().obj
    if obj.get("registry") is None:
        obj["registry"] = load_plugins(obj.get("plugins", ()))
    reg: Registry = obj["registry"]
    return reg


def _say(text: str) -> None:
    click.echo(safe_line(text))


def _ensure(build: kernels.Kernel) -> Path:
    try:
        return kernels.ensure(build)
    except tools.ToolError as exc:
        raise UsageError(f"kernel {build.name}: {exc}") from None


@click.group()
def live() -> None:
    """The real kernel as the judge: corpus files and generated sequences on a kernel under QEMU."""


@live.command("kernels")
def kernels_cmd() -> None:
    """Kernels ptfuzz can build or fetch, and which are cached."""
    for b in kernels.KERNELS.values():
        image = kernels.cached(b)
        verb = "fetched" if isinstance(b, kernels.KernelImage) else "built"
        state = f"cached {image}" if image else f"not {verb} (ptfuzz live build {b.name})"
        _say(f"{b.name}: {b.doc}")
        _say(f"    {b.made_of()}")
        if b.policy:
            _say(f"    judges the historical policy {b.policy}")
        _say(f"    described by {', '.join(b.judges)}")
        _say(f"    {state}")


@live.command()
@click.argument("names", nargs=-1)
def build(names: tuple[str, ...]) -> None:
    """Build, fetch (or reuse from the cache) the named kernels; all if none is named."""
    for name in names or tuple(kernels.KERNELS):
        _say(f"{name}: {_ensure(_build(name))}")


def _step_lines(s: LiveStep, names: dict[int, str]) -> list[str]:
    lines = [f"  {s.index:>2}. {s.step.describe()}"]
    if s.model is not None:
        lines.append(f"      model   {s.model.describe(names)}")
    if s.kernel is not None:
        lines.append(f"      kernel  {s.kernel.describe(names)}")
    mark = s.outcome.upper() if s.outcome == "disagree" else s.outcome
    lines.append(f"      => {mark}" + (f" ({s.why})" if s.why else ""))
    return lines


def _names(reg: Registry) -> dict[int, str]:
    return dict(reg.subsystem("cxl").status_names)


@live.command("run")
@click.argument("paths", metavar="FILES", nargs=-1, required=True, type=click.Path())
@click.option("--kernel", "kernel_name", default="7.3", show_default=True, help="Kernel (ptfuzz live kernels).")
@click.option("--policy", "policy_name",
              help="Judge with this policy instead of the file's; 'auto': the kernel's own policy for the "
                   "file's channels (linux-raw, or linux-fwctl for fwctl steps).")
@click.option("--device", "device_name",
              help="Predict with this device model instead of the file's ('qemu': what the emulator answers).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write per-step results here.")
@click.option("-q", "--quiet", is_flag=True, help="One line per file.")
@click.pass_context
def run_cmd(ctx: click.Context, paths: tuple[str, ...], kernel_name: str, policy_name: str | None,
            device_name: str | None, json_out: str | None, quiet: bool) -> None:
    """Run corpus FILES on a real kernel, one fresh guest each; print the model's verdict beside the kernel's."""
    reg = _registry(ctx)
    b = _build(kernel_name)
    _ensure(b)
    names = _names(reg)
    total = {"agree": 0, "partly": 0, "disagree": 0, "not performed": 0}
    report: list[dict[str, Any]] = []
    bad = 0
    for path in expand_corpus(paths):
        if device_name is not None:
            reg.device("cxl", device_name)
        r = runner.run_file(reg, path, b, policy_name, tools.cache_dir(), device_name)
        if r.error:
            raise UsageError(f"{path}: the guest failed: {r.error}")
        counts = r.counts
        for k, v in counts.items():
            total[k] += v
        bad += bool(counts["disagree"])  # a crash the model did not predict is a disagreement too
        head = (f"{path}: kernel {b.name}, policy {r.policy}, device {r.device}: "
                + ", ".join(f"{v} {k}" for k, v in counts.items()))
        _say(head)
        if not quiet:
            for s in r.steps:
                for line in _step_lines(s, names):
                    _say(line)
        report.append({"path": path, "policy": r.policy, "device": r.device, **counts,
                       "steps": [_step_json(s, names) for s in r.steps]})
    _say("user steps: " + ", ".join(f"{v} {k}" for k, v in total.items()))
    if json_out:
        write_output(json_out, "--json", json.dumps({"kernel": b.name, "total": total, "files": report},
                                                           indent=1) + "\n")
    ctx.exit(EXIT_FOUND if bad else EXIT_CLEAN)


def _step_json(s: LiveStep, names: dict[int, str]) -> dict[str, Any]:
    return {"index": s.index, "step": s.step.describe(), "outcome": s.outcome, "why": s.why,
            "model": s.model.describe(names) if s.model else None,
            "kernel": s.kernel.describe(names) if s.kernel else None}


@live.command()
@click.option("--policy", "policies", multiple=True, required=True, help="Policy to check (repeatable).")
@click.option("--kernel", "kernel_name", default="7.3", show_default=True)
@click.option("--device", "device_name", default="qemu", show_default=True,
              help="The model's device variant (qemu mirrors the emulator the kernel runs on).")
@click.option("--steps", "step_count", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", "out_dir", default="conformance", show_default=True, type=click.Path(file_okay=False),
              help="Where minimized disagreements are written.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the summary here.")
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False),
              help="Write the model-vs-kernel table per command here (Markdown).")
@click.pass_context
def conformance(ctx: click.Context, policies: tuple[str, ...], kernel_name: str, device_name: str,
                step_count: int, seed: int, out_dir: str, json_out: str | None, md_out: str | None) -> None:
    """Generated sequences on the model and on a kernel; exit 1 on a disagreement no known difference explains."""
    reg = _registry(ctx)
    b = _build(kernel_name)
    _ensure(b)
    names = _names(reg)
    summaries = []
    runs = []
    unexplained = 0
    for pol in policies:
        reg.policy("cxl", pol)
        reg.device("cxl", device_name)
        def log(message: str, policy: str = pol) -> None:
            _say(f"[{policy}] {message}")

        c = runner.Conformance(reg, b, pol, device_name, seed, step_count, out=Path(out_dir) / b.name, log=log)
        try:
            found = c.run()
        except GuestError as exc:
            raise UsageError(f"kernel {b.name}: {exc}") from None
        for d in found:
            tag = f"known: {d.known.name}" if d.known else "UNEXPLAINED"
            _say(f"[{pol}] {tag}: {d.signature} ({len(d.steps)} steps)")
            for line in _step_lines(d.last, names):
                _say(line)
            if d.known:
                _say(f"      why: {d.known.reason}")
        runs.append(c)
        summary = c.summary()
        unexplained += summary["unexplained"]
        summaries.append(summary)
        _say(f"[{pol}] " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "per_command"))
    if json_out:
        write_output(json_out, "--json", json.dumps(summaries, indent=1) + "\n")
    if md_out:
        write_output(md_out, "--markdown", runner.markdown(runs))
    ctx.exit(EXIT_FOUND if unexplained else EXIT_CLEAN)
