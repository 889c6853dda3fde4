"""``RemoteStarter.release`` never blocks and never loses the owner's reference (ADR-0004),
checked on one node with the owner process that ``spawn_remote_starter`` starts remotely."""

from __future__ import annotations

import pytest

from refcount_starter.remote.closures import remotable
from refcount_starter.runtime import Call, Node, Normal, Pid, Process
from refcount_starter.starter import StarterProcess
from refcount_starter.starter.remote import RELEASE, RemoteStarter, starter_owner

pytestmark = pytest.mark.anyio


@remotable(name="tests.starter.remote_release.idle")
async def idle(p: Process) -> None:
    """A child that waits until it is stopped."""
    await p.receive(type(None))


async def silent_owner(p: Process, test: Pid) -> None:
    """An owner that never answers a call: it only reports the messages it gets."""
    while True:
        p.send(test, ("owner got", await p.receive()))


async def test_release_never_blocks_on_an_owner_that_does_not_answer() -> None:
    """Guards against a release that waited for the owner's answer (and, on a timeout, marked
    the reference released while the owner still held it): the release is a message, sent
    at once, and it reaches the owner."""
    async with Node() as node, node.process() as me:
        owner = me.spawn(silent_owner, me.pid)
        handle = RemoteStarter(me, owner, owner, StarterProcess(owner))
        await handle.release()  # returns at once: nothing answers
        assert await me.receive(tuple) == ("owner got", (RELEASE, me.pid))
        await handle.release()  # idempotent: nothing more is sent
        assert me.mailbox_size == 0
        assert node.is_alive(owner)


async def test_release_lets_the_owner_release_the_starter() -> None:
    """With the real owner process, the release message ends the owner and releases its
    reference, so an unused starter stops."""
    async with Node() as node, node.process() as me:
        owner = me.spawn(starter_owner, me.pid, "tests.starter.remote_release.idle", ())
        starter_pid = await me.call(owner, "starter")
        handle = RemoteStarter(me, owner, starter_pid, StarterProcess(starter_pid))
        await handle.release()
        assert await handle.wait() == Normal()
        assert await node.wait(owner) == Normal()


async def test_only_the_asker_releases_through_the_owner() -> None:
    """Guards against an owner that took any process's release for the asker's: a bare
    ``RELEASE``, a release naming another process and the call ``"release"`` from another
    process are ignored; the asker's own release still ends it."""
    async with Node() as node, node.process() as me, node.process() as stranger:
        owner = me.spawn(starter_owner, me.pid, "tests.starter.remote_release.idle", ())
        starter_pid = await me.call(owner, "starter")
        stranger.send(owner, RELEASE)
        stranger.send(owner, (RELEASE, stranger.pid))
        stranger.send(owner, Call(stranger.pid, stranger.reserve_monitor(), "release"))
        # Answered after the three above (a mailbox is in order): the owner ignored them.
        assert await me.call(owner, "starter") == starter_pid
        assert node.is_alive(owner) and node.is_alive(starter_pid)
        handle = RemoteStarter(me, owner, starter_pid, StarterProcess(starter_pid))
        await handle.release()
        assert await node.wait(owner) == Normal()
        assert await handle.wait() == Normal()
