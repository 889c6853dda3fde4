"""``python -m refcount_starter demo``: Cloud Haskell's DPP-84 leak, and its fix, side by side.

One cycle is what leaked in Cloud Haskell: make a starter for a process function (as
``toChildStart`` did), ``start_new_child`` + ``terminate_child`` + ``delete_child``, and the
owner lets go of the starter. The unmanaged starter (Cloud Haskell 0.1's behaviour: it never
stops) lives here, in the demo, and nowhere in the library's API.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import anyio
import attrs

from . import supervisor
from .runtime import Call, Kill, Node, Pid, Process, Ref
from .starter import Starter, spawn_child_starter
from .supervisor import TRANSIENT, ChildKey, ChildSpec, ChildStart, RestartOne, StarterGone

__all__ = ["DemoReport", "check_plot_file", "run_demo"]


async def worker(p: Process) -> None:
    """The child every cycle starts: it waits for messages until it is stopped."""
    async for _ in p.messages():
        pass


# -- Cloud Haskell 0.1's starter: one process per spec, never stopped -----------------------------


async def _unmanaged_starter(p: Process, fn: Callable[..., Any]) -> None:
    while True:
        call = await p.receive(Call)
        owner, ref = call.request
        p.reply(call, p.spawn_for(owner, ref, fn))


@attrs.frozen
class _UnmanagedStart(ChildStart):
    starter: Pid

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        ref = sup.reserve_monitor()
        pid: Pid = await sup.call(self.starter, (sup.pid, ref))
        sup.bind_monitor(ref, pid)
        return pid, ref


# -- the runs ----------------------------------------------------------------------------------


@attrs.define
class DemoReport:
    """What the demo measured; ``to_json`` is what ``demo --json`` prints."""

    cycles: int
    unmanaged_before: int = 0
    unmanaged_after: int = 0
    refcounted_before: int = 0
    refcounted_after: int = 0
    starters_alive_after: int = 0
    shared_before: int = 0
    shared_after: int = 0
    shared_supervisors: int = 0
    stale_copy_error: str = ""
    unmanaged_series: list[tuple[int, int]] = attrs.Factory(list)
    refcounted_series: list[tuple[int, int]] = attrs.Factory(list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``demo --json``."""
        return {
            "cycles": self.cycles,
            "unmanaged": {"live_before": self.unmanaged_before, "live_after": self.unmanaged_after},
            "refcounted": {
                "live_before": self.refcounted_before,
                "live_after": self.refcounted_after,
                "starters_alive_after": self.starters_alive_after,
            },
            "shared": {
                "supervisors": self.shared_supervisors,
                "live_before": self.shared_before,
                "live_after": self.shared_after,
            },
            "stale_copy_error": self.stale_copy_error,
        }


async def _cycle(sup: supervisor.Supervisor, spec: ChildSpec) -> None:
    await sup.start_new_child(spec)
    await sup.terminate_child(spec.key)
    await sup.delete_child(spec.key)


async def run_cycles(
    cycles: int, *, sample_every: int = 0, progress: Callable[[str, int], None] | None = None
) -> DemoReport:
    """Run both cycles ``cycles`` times on an embedded node, the shared run and the stale copy.

    Args:
        cycles: How many cycles each run makes.
        sample_every: Record live processes every so many cycles (0: never), for the plot.
        progress: Called as ``progress(run_name, cycles_done)`` now and then.

    Returns:
        The report.
    """
    report = DemoReport(cycles)
    step = max(1, cycles // 100)
    async with Node("demo") as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())

        # 1. Unmanaged: a starter per cycle that nobody ever stops.
        report.unmanaged_before = node.process_count
        for i in range(cycles):
            unmanaged = me.spawn(_unmanaged_starter, worker)
            await _cycle(sup, ChildSpec("db", _UnmanagedStart(unmanaged), restart=TRANSIENT))
            if sample_every and i % sample_every == 0:
                report.unmanaged_series.append((i, node.process_count - report.unmanaged_before))
            if progress is not None and i % step == 0:
                progress("unmanaged", i)
        report.unmanaged_after = node.process_count
        # Clean up what Cloud Haskell 0.1 left behind, so the next run starts level.
        leaked = [pid for pid in node.processes() if pid not in (me.pid, sup.pid)]
        for pid in leaked:
            node.exit(pid, Kill())
        for pid in leaked:
            await node.wait(pid)

        # 2. Reference-counted: the starter stops when the owner and the supervisor let go.
        report.refcounted_before = node.process_count
        last: Starter | None = None
        for i in range(cycles):
            starter = await spawn_child_starter(me, worker)
            await _cycle(sup, ChildSpec("db", starter.child_start, restart=TRANSIENT))
            await starter.release()
            await node.wait(starter.pid)
            last = starter
            if sample_every and i % sample_every == 0:
                report.refcounted_series.append((i, node.process_count - report.refcounted_before))
            if progress is not None and i % step == 0:
                progress("refcounted", i)
        report.refcounted_after = node.process_count
        report.starters_alive_after = int(last is not None and node.is_alive(last.pid))

        # 3. One starter shared by several supervisors that add and delete its spec in turn.
        others = [await supervisor.start(me, RestartOne()) for _ in range(3)]
        report.shared_supervisors = len(others)
        report.shared_before = node.process_count
        shared = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", shared.child_start, restart=TRANSIENT)
        for i in range(cycles):
            for other in others:
                await _cycle(other, spec)
            if progress is not None and i % step == 0:
                progress("shared", i)
        await shared.release()
        await node.wait(shared.pid)
        report.shared_after = node.process_count

        # 4. A stale copy: the spec outlived its starter, and fails early and clearly.
        try:
            await sup.add_child(spec)
        except StarterGone as exc:
            report.stale_copy_error = str(exc)
        else:
            report.stale_copy_error = "(no error: the stale copy bound, which must not happen)"
    return report


def _text(report: DemoReport) -> str:
    lines = [
        "DPP-84: start_new_child + terminate_child + delete_child, then the owner lets go",
        f"cycles per run: {report.cycles:,}",
        "",
        "unmanaged starter (Cloud Haskell 0.1: never stopped)",
        f"  live processes before: {report.unmanaged_before:>8,}",
        f"  live processes after:  {report.unmanaged_after:>8,}"
        f"   leaked {report.unmanaged_after - report.unmanaged_before:,}",
        "reference-counted starter",
        f"  live processes before: {report.refcounted_before:>8,}",
        f"  live processes after:  {report.refcounted_after:>8,}"
        f"   leaked {report.refcounted_after - report.refcounted_before:,}",
        f"  starters still alive:  {report.starters_alive_after:>8,}",
        f"one starter shared by {report.shared_supervisors} supervisors, each adding and deleting its spec",
        f"  live processes before: {report.shared_before:>8,}",
        f"  live processes after:  {report.shared_after:>8,}",
        "",
        "a stale copy of the spec, added after the last reference went:",
        f"  StarterGone: {report.stale_copy_error}",
    ]
    return "\n".join(lines)


def check_plot_file(path: str) -> None:
    """Check, before the run, that ``--plot`` can draw to ``path``.

    The check opens the file as the plot will (and removes it again if it did not exist),
    so that a missing folder, a folder that is not writable or a name the file system
    refuses fails now, not after the cycles have run.

    Args:
        path: The picture's file name; its extension is the format (``.png``, ``.svg``, ...).

    Raises:
        ValueError: matplotlib is not installed, the extension is not a format matplotlib
            writes here, or the file cannot be written (the message says why).
    """
    shown = repr(path) if len(path) <= 80 else repr(path[:80]) + "..."
    if not path or "\0" in path:
        raise ValueError(f"expected a file name such as dpp84.png, got {shown}")
    try:
        import matplotlib
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ValueError("--plot needs matplotlib (pip install 'refcount_starter[plot]')") from None
    if os.path.isdir(path):
        raise ValueError(f"cannot draw to {shown}: it is a folder; name a file in it")
    formats = set(FigureCanvasBase.get_supported_filetypes())
    if shutil.which(matplotlib.rcParams["pgf.texsystem"]) is None:
        formats.discard("pgf")  # matplotlib writes .pgf only through a TeX installation
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in formats:
        raise ValueError(
            f"cannot draw to {shown}: expected a file name ending in one of "
            f"{', '.join('.' + f for f in sorted(formats))}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    existed = os.path.lexists(path)
    try:
        with open(path, "ab" if existed else "xb"):
            pass
    except FileNotFoundError:
        raise ValueError(f"cannot draw to {shown}: the folder {folder!r} does not exist") from None
    except NotADirectoryError:
        raise ValueError(f"cannot draw to {shown}: {folder!r} is not a folder") from None
    except OSError as exc:
        raise ValueError(f"cannot draw to {shown}: {exc.strerror or exc}") from None
    if not existed:
        os.remove(path)


def _plot(report: DemoReport, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: --plot needs matplotlib (pip install 'refcount_starter[plot]')") from None
    figure, axes = plt.subplots(figsize=(7, 4))
    for series, label in (
        (report.unmanaged_series, "unmanaged starter (Cloud Haskell 0.1)"),
        (report.refcounted_series, "reference-counted starter"),
    ):
        axes.plot([c for c, _ in series], [n for _, n in series], label=label)
    axes.set_xlabel("cycles (start_new_child + terminate_child + delete_child)")
    axes.set_ylabel("processes leaked (live - live before)")
    axes.set_title("DPP-84 and its fix")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo as the command line asked; return the exit status."""
    if args.nats:
        from .demo_nats import run_nats_demo

        return run_nats_demo(args.nats, cycles=args.cycles, as_json=args.json)
    interactive = sys.stderr.isatty() and not args.json

    def progress(run: str, done: int) -> None:
        if interactive:
            print(f"\r{run:>10}: {done:>9,} / {args.cycles:,} cycles", end="", file=sys.stderr, flush=True)

    sample_every = max(1, args.cycles // 200) if args.plot else 0
    report = anyio.run(
        lambda: run_cycles(args.cycles, sample_every=sample_every, progress=progress), backend=args.backend
    )
    if interactive:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    if args.plot:
        _plot(report, args.plot)
    print(json.dumps(report.to_json()) if args.json else _text(report))
    return 0
