"""``Node.snapshot()``: processes, names, supervision trees and starters, as frozen values and JSON."""

from __future__ import annotations

import json

import attrs
import pytest

from refcount_starter.observe import NodeSnapshot, register_kind, take_snapshot
from refcount_starter.observe.kinds import STARTER_FUNCTION, SUPERVISOR_FUNCTION, kind_of
from refcount_starter.runtime import Call, Node, NodeNotRunning, Process
from refcount_starter.starter import spawn_child_starter
from refcount_starter.starter.service import starter_process
from refcount_starter.supervisor import TRANSIENT, ChildSpec, RestartOne
from refcount_starter.supervisor import start as start_supervisor
from refcount_starter.supervisor.server import supervisor_process

pytestmark = pytest.mark.anyio


async def worker(p: Process) -> None:
    """Runs until stopped; crashes on ``"crash"``."""
    if await p.receive(str) == "crash":
        raise RuntimeError("told to crash")


async def silent(p: Process) -> None:
    """Takes calls and never answers them."""
    while True:
        await p.receive(Call)


async def dies_on_call(p: Process) -> None:
    """Exits as soon as it is called."""
    await p.receive(Call)
    raise RuntimeError("called")


def qualified(fn: object) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"  # type: ignore[attr-defined]


def test_the_known_kinds_name_the_real_functions() -> None:
    """A rename of the supervisor's or the starter's function fails here, not silently in the observer."""
    assert qualified(supervisor_process) == SUPERVISOR_FUNCTION
    assert qualified(starter_process) == STARTER_FUNCTION
    assert kind_of(SUPERVISOR_FUNCTION) == "supervisor"
    assert kind_of(STARTER_FUNCTION) == "starter"
    assert kind_of(None) == "process" and kind_of("some.function") == "process"


def test_register_kind_refuses_bad_input() -> None:
    """A kind that is neither supervisor nor starter, or a function that is no name, is refused."""
    with pytest.raises(ValueError, match="'worker'"):
        register_kind("m.f", "worker")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="qualified function name"):
        register_kind("", "starter")


async def test_processes_links_monitors_and_names() -> None:
    """Each live process appears with its info; registered names map to pids."""
    async with Node("snap") as node, node.process(name="main") as me:
        a = me.spawn_link(worker)
        b = me.spawn(worker, name="b")
        ref = me.monitor(b)
        snapshot = await node.snapshot()
        assert isinstance(snapshot, NodeSnapshot)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            snapshot.node = "other"  # type: ignore[misc]
        pids = [info.pid for info in snapshot.processes]
        assert pids == [me.pid, a, b]
        by_pid = {info.pid: info for info in snapshot.processes}
        assert by_pid[a].links == (me.pid,)
        assert by_pid[b].monitored_by == ((ref, me.pid),)
        assert by_pid[a].function == qualified(worker)
        assert dict(snapshot.registered) == {"b": b, "main": me.pid}
        assert snapshot.supervisors == () and snapshot.starters == ()
        assert snapshot.node == "snap" and snapshot.incarnation == node.incarnation
        document = json.loads(json.dumps(snapshot.to_json()))
        assert document["registered"] == {"b": str(b), "main": str(me.pid)}
        row = next(p for p in document["processes"] if p["pid"] == str(a))
        assert row["links"] == [str(me.pid)] and row["status"] in ("waiting", "runnable")
        assert row["kind"] == "process"


async def test_a_starter_shared_by_two_supervisors() -> None:
    """The tree shows each child's state and starter; the starter shows its holders, keys and seqs."""
    async with Node() as node, node.process() as me:
        sup_a = await start_supervisor(me, RestartOne())
        sup_b = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
        await sup_a.start_new_child(spec)
        await sup_b.add_child(spec)
        snapshot = await node.snapshot()
        assert [view.pid for view in snapshot.supervisors] == [sup_a.pid, sup_b.pid]
        assert snapshot.kind(sup_a.pid) == "supervisor" and snapshot.kind(starter.pid) == "starter"
        assert snapshot.kind(me.pid) == "process"
        (child_a,) = snapshot.supervisors[0].children
        (child_b,) = snapshot.supervisors[1].children
        assert (child_a.key, child_a.state, child_a.starter) == ("db", "running", starter.pid)
        assert child_a.pid is not None and node.is_alive(child_a.pid)
        assert (child_b.state, child_b.pid, child_b.restart) == ("stopped", None, "transient")
        assert child_a.start == f"starter {starter.pid}" and child_a.type == "worker"
        assert snapshot.supervisors[0].running == 1 and snapshot.supervisors[1].running == 0
        (view,) = snapshot.starters
        assert view.pid == starter.pid and view.owner == me.pid and view.owner_holds
        assert set(view.holders) == {me.pid, sup_a.pid, sup_b.pid}
        assert [(holder, key) for holder, key, _ in view.references] == sorted(
            [(sup_a.pid, "db"), (sup_b.pid, "db")]
        )
        assert view.children_started == 1 and view.error is None

        # The owner lets go, one supervisor deletes its spec: the starter shows one holder left.
        await starter.release()
        await sup_b.delete_child("db")
        view = (await node.snapshot()).starters[0]
        assert view.holders == (sup_a.pid,) and not view.owner_holds
        document = json.loads(json.dumps((await node.snapshot()).to_json()))
        assert document["starters"][0]["holders"] == [str(sup_a.pid)]
        assert document["starters"][0]["references"][0]["key"] == "db"
        assert document["supervisors"][0]["children"][0]["starter"] == str(starter.pid)


async def test_restarts_are_counted() -> None:
    """A child that crashes and is restarted shows in its supervisor's restart count."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne(), [ChildSpec("w", worker)])
        await sup.subscribe()
        (child,) = (await node.snapshot()).supervisors[0].children
        assert child.pid is not None and child.start == qualified(worker)
        me.send(child.pid, "crash")
        from refcount_starter.supervisor import SupervisedChildStarted

        await me.receive(SupervisedChildStarted)
        view = (await node.snapshot()).supervisors[0]
        assert view.total_restarts == 1 and view.children[0].restarts == 1
        assert view.children[0].state == "running" and view.children[0].pid != child.pid
        # The intensity window: the default limit, with the one restart in it.
        assert (view.max_restarts, view.within_seconds, view.restarts_in_window) == (1, 5.0, 1)


async def test_a_supervisor_that_does_not_answer_is_shown_with_an_error() -> None:
    """A process of a known kind that never answers, or dies when asked, costs the timeout and no more."""
    register_kind(qualified(silent), "supervisor")
    register_kind(qualified(dies_on_call), "starter")
    async with Node() as node, node.process() as me:
        quiet = me.spawn(silent)
        dying = me.spawn(dies_on_call)
        snapshot = await take_snapshot(node, timeout=0.2)
        (sup_view,) = snapshot.supervisors
        (starter_view,) = snapshot.starters
        assert sup_view.pid == quiet and sup_view.error == "no answer within 0.2 s"
        assert starter_view.pid == dying and starter_view.error is not None
        assert starter_view.error.startswith("exited: Crashed")
        assert json.dumps(snapshot.to_json())


async def test_slices_read_every_process() -> None:
    """Reading the table a few processes at a time still reads each one once, in spawn order."""
    async with Node() as node, node.process() as me:
        pids = [me.pid] + [me.spawn(worker) for _ in range(10)]
        snapshot = await take_snapshot(node, slice_size=3)
        assert [info.pid for info in snapshot.processes] == pids


async def test_bad_arguments_and_a_stopped_node() -> None:
    """A bad timeout or slice size is refused by name; a node that is not running cannot be asked."""
    async with Node() as node:
        with pytest.raises(TypeError, match="timeout"):
            await take_snapshot(node, timeout="1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            await take_snapshot(node, timeout=0)
        with pytest.raises(TypeError, match="slice_size"):
            await take_snapshot(node, slice_size=1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="slice_size"):
            await take_snapshot(node, slice_size=0)
    with pytest.raises(NodeNotRunning):
        await node.snapshot()


def test_an_unknown_child_state_is_shown_not_fatal() -> None:
    """A child state this observer does not know (from a newer supervisor) shows as unknown."""
    from refcount_starter.observe.collect import _child_view
    from refcount_starter.supervisor.state import Child

    @attrs.frozen
    class ChildPaused:
        pid: object

    view = _child_view(Child("w", ChildPaused("somewhere"), ChildSpec("w", worker)))  # type: ignore[arg-type]
    assert (view.state, view.pid, view.key) == ("unknown", "somewhere", "w")


async def test_the_node_runs_between_slices() -> None:
    """A snapshot of many processes lets the node's other tasks run between its slices."""
    import anyio
    import anyio.lowlevel

    async with Node() as node, node.process() as me:
        for _ in range(5000):
            me.spawn(worker)
        turns = 0
        done = False

        async def other_task() -> None:
            nonlocal turns
            while not done:
                await anyio.lowlevel.checkpoint()
                turns += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
            await anyio.lowlevel.checkpoint()  # let it start
            before = turns
            snapshot = await take_snapshot(node, slice_size=1000)
            during = turns - before
            done = True
        assert len(snapshot.processes) == 5001
        assert during >= 4  # at least once between each two of the five slices
        for pid in node.processes():
            if pid != me.pid:
                me.send(pid, "stop")
