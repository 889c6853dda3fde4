"""Pids and refs: frozen values that name one process (or monitor) for the life of a cluster."""

from __future__ import annotations

import pytest

from refcount_starter.runtime import Node, Pid, Process, Ref

pytestmark = pytest.mark.anyio


def test_pid_is_a_frozen_hashable_value() -> None:
    """Pids with equal parts are equal, hash alike, and cannot be changed."""
    a, b = Pid("n", 1, 2), Pid("n", 1, 2)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.serial = 3  # type: ignore[misc]


def test_a_pid_equals_only_a_pid() -> None:
    """A pid is never equal to a ref or a plain tuple with the same parts, and does not sort
    against them; copies are equal (and, being immutable, the same object)."""
    import copy
    import pickle

    pid = Pid("n", 1, 2)
    assert pid != Ref("n", 1, 2) and pid != ("n", 1, 2)
    assert ("n", 1, 2) != pid  # noqa: SIM300 (the tuple on the left, on purpose)
    assert (pid == Ref("n", 1, 2)) is False and {pid: 1}.get(Ref("n", 1, 2)) is None
    with pytest.raises(TypeError):
        _ = pid < Ref("n", 1, 3)  # type: ignore[operator]
    assert copy.copy(pid) is pid and copy.deepcopy(pid) is pid
    assert pickle.loads(pickle.dumps(pid)) == pid
    match pid:
        case Pid(node, incarnation, serial):
            assert (node, incarnation, serial) == ("n", 1, 2)


def test_pids_differ_by_every_part() -> None:
    """Changing the node, the incarnation or the serial gives a different pid."""
    base = Pid("n", 1, 2)
    assert len({base, Pid("m", 1, 2), Pid("n", 2, 2), Pid("n", 1, 3)}) == 4


def test_pids_are_ordered_and_printable() -> None:
    """Pids sort by (node, incarnation, serial) and print as <node.incarnation.serial>."""
    assert sorted([Pid("n", 1, 3), Pid("n", 1, 2)]) == [Pid("n", 1, 2), Pid("n", 1, 3)]
    assert str(Pid("n", 1, 2)) == repr(Pid("n", 1, 2)) == "<n.1.2>"
    assert repr(Ref("n", 1, 2)) == "#Ref<n.1.2>"


@pytest.mark.parametrize(
    ("args", "named", "error"),
    [
        (("", 1, 1), "node", ValueError),
        ((7, 1, 1), "node", TypeError),
        (("n", -1, 1), "incarnation", ValueError),
        (("n", 1, -2), "serial", ValueError),
        (("n", 1, 1.5), "serial", TypeError),
        (("n", "1", 1), "incarnation", TypeError),
    ],
)
def test_malformed_pid_parts_are_refused(
    args: tuple[object, object, object], named: str, error: type[Exception]
) -> None:
    """A pid part of the wrong type raises a TypeError, one out of range a ValueError, each
    naming the field and the value (the library's rule everywhere)."""
    for cls in (Pid, Ref):
        with pytest.raises(error, match=named):
            cls(*args)  # type: ignore[arg-type]


def test_a_bool_is_not_a_serial() -> None:
    """A bool is refused as a serial even though it is an int subclass."""
    with pytest.raises(TypeError, match="True"):
        Pid("n", 1, True)


async def test_serials_are_never_reused() -> None:
    """Every spawn on a node gets a new serial, even after earlier processes died."""
    async with Node() as node:

        async def quick(p: Process) -> None:
            pass

        pids = []
        for _ in range(20):
            pid = node.spawn(quick)
            await node.wait(pid)
            pids.append(pid)
        assert len({pid.serial for pid in pids}) == 20
        assert all(pid.node == node.name and pid.incarnation == node.incarnation for pid in pids)


async def test_a_restarted_node_has_a_larger_incarnation() -> None:
    """A node started again under the same name gets a larger incarnation than before."""
    async with Node("same") as first:
        old = first.incarnation
    async with Node("same") as second:
        assert second.incarnation > old
