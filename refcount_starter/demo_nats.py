"""``python -m refcount_starter demo --nats URL``: the DPP-84 cycle across two nodes.

Layout: one node OS process, ``demo-starter`` (``python -m refcount_starter.node_main``
started here as a subprocess), hosts the starters and the children they start; the
supervisor runs on a node in this process, ``demo-supervisor``. Each cycle makes a
reference-counted starter on the starter's node (``spawn_remote_starter``), runs
``start_new_child`` + ``terminate_child`` + ``delete_child`` from the supervisor across the
nodes, and lets go of the owner's reference; the starter stops by itself. The live process
count on the starter's node is read before and after. Then a copy of the last spec, added
after its starter stopped, fails with ``StarterGone``.

The node subprocess gets the same URL (credentials included) and is stopped with SIGTERM
(SIGKILL after 10 s) by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import anyio
import anyio.abc
import attrs

from .demo import worker
from .remote.closures import remotable

__all__ = ["DEMO_WORKER", "NatsDemoReport", "run_nats_demo"]

STARTER_NODE = "demo-starter"
SUPERVISOR_NODE = "demo-supervisor"

#: The demo's child, in the remote table of every node that imports this module (the
#: starter's node does: ``--import refcount_starter.demo_nats``).
DEMO_WORKER = "refcount_starter.demo.worker"
remotable(name=DEMO_WORKER)(worker)


@attrs.define
class NatsDemoReport:
    """What the demo across nodes measured; ``to_json`` is what ``demo --nats --json`` prints."""

    cycles: int
    live_before: int = 0
    live_after: int = 0
    starters_alive_after: int = 0
    stale_copy_error: str = ""
    nodes: dict[str, str] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (the embedded demo's shape, where it applies, plus ``nodes``)."""
        return {
            "cycles": self.cycles,
            "refcounted": {
                "live_before": self.live_before,
                "live_after": self.live_after,
                "starters_alive_after": self.starters_alive_after,
            },
            "stale_copy_error": self.stale_copy_error,
            "nodes": dict(self.nodes),
        }


def _text(report: NatsDemoReport) -> str:
    return "\n".join(
        [
            "DPP-84 across two nodes over NATS: start_new_child + terminate_child + delete_child",
            f"  starters and children on node {report.nodes.get('starter', STARTER_NODE)!r} (its own OS process)",
            f"  the supervisor on node {report.nodes.get('supervisor', SUPERVISOR_NODE)!r}",
            f"cycles: {report.cycles:,}",
            "",
            "reference-counted starter (a new one each cycle; the owner lets go after the cycle)",
            f"  live processes on the starter's node before: {report.live_before:>8,}",
            f"  live processes on the starter's node after:  {report.live_after:>8,}"
            f"   leaked {report.live_after - report.live_before:,}",
            f"  starters still alive:                        {report.starters_alive_after:>8,}",
            "",
            "a stale copy of the spec, added after the last reference went:",
            f"  StarterGone: {report.stale_copy_error}",
        ]
    )


async def _processes_on(me: Any, node: str) -> int:
    from .remote.service import INFO
    from .runtime import Call, Reply

    ref = me.reserve_monitor()
    me.demonitor(ref)
    me.send((INFO, node), Call(me.pid, ref, "processes"))
    reply = await me.receive(Reply, where=lambda r: r.ref == ref, timeout=30)
    count: int = reply.value
    return count


async def _start_node(url: str, name: str) -> tuple[anyio.abc.Process, int]:
    command = [
        sys.executable,
        "-m",
        "refcount_starter.node_main",
        "--nats",
        url,
        "--name",
        name,
        "--import",
        __name__,
        # Its own errors still reach stderr; its retry warnings would drown the demo.
        "--log-level=ERROR",
    ]
    process = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=None)
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(60):
        while not line.endswith(b"\n"):
            try:
                line += await process.stdout.receive(1)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break  # the node process exited (it said why on stderr)
    words = line.decode(errors="replace").split()
    if words[:2] != ["READY", name]:
        await _stop_node(process)
        raise RuntimeError(f"the node process {name!r} did not start (exit status {process.returncode})")
    return process, int(words[2])


async def _stop_node(process: anyio.abc.Process) -> None:
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it has just exited by itself
                os.kill(process.pid, signal.SIGTERM)
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                await process.wait()
        await process.aclose()


async def run_cycles_across_nodes(url: str, cycles: int) -> NatsDemoReport:
    """Run the demo against the NATS server at ``url``; return the report.

    Raises:
        RuntimeError: The node process did not start.
        NatsConnectError, NatsAuthenticationError: The server is unreachable or refused us.
    """
    from . import supervisor
    from .remote.natsoptions import NatsOptions
    from .remote.natstransport import NatsTransport
    from .runtime import Node
    from .starter.remote import spawn_remote_starter
    from .supervisor import TRANSIENT, ChildSpec, RestartOne, StarterGone

    report = NatsDemoReport(cycles)
    process, incarnation = await _start_node(url, STARTER_NODE)
    try:
        transport = NatsTransport(NatsOptions.from_env(servers=url))
        async with Node(SUPERVISOR_NODE, transport=transport) as node, node.process() as me:
            report.nodes = {
                "starter": f"{STARTER_NODE}.{incarnation}",
                "supervisor": f"{node.name}.{node.incarnation}",
            }
            sup = await supervisor.start(me, RestartOne())
            report.live_before = await _processes_on(me, STARTER_NODE)
            last = None
            spec = None
            for _ in range(cycles):
                starter = await spawn_remote_starter(me, STARTER_NODE, DEMO_WORKER)
                spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
                await sup.start_new_child(spec)
                await sup.terminate_child("db")
                await sup.delete_child("db")
                await starter.release()
                await starter.wait(timeout=30)
                last = starter
            report.live_after = await _processes_on(me, STARTER_NODE)
            if last is not None:
                try:
                    await last.statistics(timeout=30)
                    report.starters_alive_after = 1
                except StarterGone:
                    report.starters_alive_after = 0
            if spec is not None:
                try:
                    await sup.add_child(spec)
                except StarterGone as exc:
                    report.stale_copy_error = str(exc)
                else:
                    report.stale_copy_error = "(no error: the stale copy bound, which must not happen)"
    finally:
        await _stop_node(process)
    return report


def run_nats_demo(url: str, *, cycles: int, as_json: bool) -> int:
    """Run the demo across two nodes through the NATS server at ``url``; print the report.

    Args:
        url: The NATS server (credentials in the URL, or through ``RS_NATS_*`` variables as
            for the node command).
        cycles: How many DPP-84 cycles to run.
        as_json: Print one JSON object (``{"cycles", "refcounted", "stale_copy_error",
            "nodes"}``) instead of text.

    Returns:
        0 on success; 2 if the server cannot be used or the node process did not start.
    """
    from .remote.errors import TransportError

    started = time.monotonic()
    try:
        report = anyio.run(run_cycles_across_nodes, url, cycles, backend="asyncio")
    except (TransportError, RuntimeError, TimeoutError) as exc:
        print(f"error: the demo across nodes failed: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        print(_text(report))
        print(f"\n({time.monotonic() - started:.1f} s)")
    return 0
