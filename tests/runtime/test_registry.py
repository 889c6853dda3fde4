"""The registry: names, whereis, send by name, and names released on death."""

from __future__ import annotations

import pytest

from refcount_starter.runtime import (
    NameNotRegistered,
    NameTaken,
    Node,
    Normal,
    ProcessNotAlive,
    Shutdown,
)

from .helpers import exit_on_message, forward, idle

pytestmark = pytest.mark.anyio


async def test_register_and_whereis() -> None:
    """A registered name resolves to its process; an unknown name resolves to None."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        node.register("svc", pid)
        assert node.whereis("svc") == me.whereis("svc") == pid
        assert node.whereis("other") is None
        assert node.registered() == ["svc"]


async def test_send_by_name_and_by_name_and_node() -> None:
    """A message to a name, or to (name, this node), reaches the named process."""
    async with Node() as node, node.process() as me:
        me.spawn(forward, me.pid, name="relay")
        me.send("relay", 1)
        me.send(("relay", node.name), 2)
        node.send("relay", 3)
        assert [await me.receive(timeout=5) for _ in range(3)] == [1, 2, 3]


async def test_a_name_is_released_when_its_process_dies() -> None:
    """After the holder dies the name is free: whereis is None and it can be taken again."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message, name="svc")
        me.send("svc", Shutdown())
        await node.wait(pid)
        assert node.whereis("svc") is None
        with pytest.raises(NameNotRegistered, match="'svc'"):
            me.send("svc", "lost")
        again = me.spawn(idle, name="svc")
        assert node.whereis("svc") == again


async def test_process_register_names_itself() -> None:
    """``Process.register`` registers the calling process."""
    async with Node() as node, node.process() as me:
        me.register("me")
        assert node.whereis("me") == me.pid


async def test_node_process_can_be_named() -> None:
    """``node.process(name=...)`` registers the block's process and releases it after."""
    async with Node() as node:
        async with node.process(name="host") as me:
            assert node.whereis("host") == me.pid
        assert node.whereis("host") is None


async def test_a_taken_name_is_refused() -> None:
    """Registering a name another live process holds raises NameTaken naming both."""
    async with Node() as node, node.process() as me:
        holder = me.spawn(idle, name="svc")
        other = me.spawn(idle)
        with pytest.raises(NameTaken, match=f"'svc'.*{holder}"):
            node.register("svc", other)
        assert node.whereis("svc") == holder


async def test_spawn_with_a_taken_name_leaves_no_process_behind() -> None:
    """Regression: a spawn refused for a taken name must not leave a process that never runs."""
    async with Node() as node, node.process() as me:
        me.spawn(idle, name="svc")
        before = node.processes()
        with pytest.raises(NameTaken):
            me.spawn(idle, name="svc")
        with pytest.raises(TypeError, match="42"):
            node.spawn(idle, name=42)  # type: ignore[arg-type]
        with pytest.raises(NameTaken):
            async with node.process(name="svc"):
                pass
        assert node.processes() == before
    # Leaving the node did not wait for a process that could never exit.


async def test_one_name_per_process() -> None:
    """A process that already has a name cannot take a second one."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle, name="first")
        with pytest.raises(ValueError, match="'first'"):
            node.register("second", pid)
        assert node.whereis("second") is None


async def test_register_of_a_dead_pid_is_refused() -> None:
    """Registering a dead pid raises ProcessNotAlive carrying why it died."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        me.send(pid, Normal())
        await node.wait(pid)
        with pytest.raises(ProcessNotAlive, match=str(pid)) as info:
            node.register("late", pid)
        assert info.value.reason.last_reason == Normal()
        assert node.whereis("late") is None


async def test_unregister_releases_the_name() -> None:
    """``unregister`` frees the name; unregistering an unknown name is a typed error."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle, name="svc")
        node.unregister("svc")
        assert node.whereis("svc") is None
        node.register("svc2", pid)  # the process may take a name again
        with pytest.raises(NameNotRegistered, match="'svc'"):
            node.unregister("svc")


@pytest.mark.parametrize("bad", ["", 7, None, ("a", "b")])
async def test_bad_names_are_refused(bad: object) -> None:
    """A name that is not a non-empty str raises TypeError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="registered name"):
            node.register(bad, me.pid)  # type: ignore[arg-type]
        me.register("fine")
