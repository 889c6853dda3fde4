"""One root for the library's errors: every public exception class derives from
``RefcountStarterError`` and keeps the standard base callers may catch it by. See ADR-0010."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import refcount_starter
from refcount_starter import (
    CallTimeout,
    ChildInitIgnore,
    ChildNotFound,
    NameNotRegistered,
    NameTaken,
    Node,
    NodeNotRunning,
    ProcessExit,
    ProcessNotAlive,
    RefcountStarterError,
    StarterGone,
    StarterRefused,
    StartFailureDied,
    SupervisorError,
    spawn_child_starter,
)
from refcount_starter.remote.closures import ClosureNameTaken, UnknownClosure
from refcount_starter.remote.codec import DecodeError
from refcount_starter.remote.errors import TransportError
from refcount_starter.remote.service import RemoteSpawnFailed
from refcount_starter.runtime import Process
from refcount_starter.starter import Refusal

# ProcessExit is an exit, not an error (Erlang's exit class, apart from error): under the
# root, an ``except RefcountStarterError`` meant to recover from a failed call would swallow
# a process's deliberate exit (ChildInitIgnore included) and keep it running.
_NOT_ERRORS = (ProcessExit,)


def _public_exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class a module of the package defines under a public name, plus the
    ones the package and its subpackages list in ``__all__``."""
    found: dict[str, type[BaseException]] = {}
    modules = [refcount_starter]
    for info in pkgutil.walk_packages(refcount_starter.__path__, "refcount_starter."):
        if info.name.endswith("__main__"):
            continue  # importing it runs the command line
        modules.append(importlib.import_module(info.name))
    for module in modules:
        names = set(getattr(module, "__all__", ())) | {n for n in vars(module) if not n.startswith("_")}
        for name in names:
            value = getattr(module, name, None)
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("refcount_starter")
                and not value.__name__.startswith("_")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


_CLASSES = _public_exception_classes()


def test_the_walk_finds_the_errors_of_every_subpackage() -> None:
    """The walk below sees the errors of the runtime, supervisors, starter and remote layers."""
    for cls in (NameTaken, SupervisorError, StarterRefused, DecodeError, UnknownClosure, TransportError):
        assert cls in _CLASSES.values(), cls
    assert len(_CLASSES) >= 20, sorted(_CLASSES)


@pytest.mark.parametrize("name", sorted(_CLASSES))
def test_every_public_exception_derives_from_the_root(name: str) -> None:
    """Every public exception class is a RefcountStarterError, except the exits."""
    cls = _CLASSES[name]
    if issubclass(cls, _NOT_ERRORS):
        assert not issubclass(cls, RefcountStarterError), f"{name} is an exit, not an error"
    else:
        assert issubclass(cls, RefcountStarterError), f"{name} does not derive from RefcountStarterError"


def test_exits_stay_outside_the_root() -> None:
    """ProcessExit and ChildInitIgnore escape an ``except RefcountStarterError`` handler."""
    for exit_ in (ProcessExit(refcount_starter.Normal()), ChildInitIgnore()):
        with pytest.raises(ProcessExit):
            try:
                raise exit_
            except RefcountStarterError:
                pytest.fail(f"{exit_!r} was caught as an error")


@pytest.mark.parametrize(
    ("cls", "standard"),
    [
        (CallTimeout, TimeoutError),
        (NameTaken, ValueError),
        (NameNotRegistered, LookupError),
        (ProcessNotAlive, LookupError),
        (NodeNotRunning, RuntimeError),
        (ChildNotFound, LookupError),
        (TransportError, RuntimeError),
        (DecodeError, ValueError),
        (RemoteSpawnFailed, RuntimeError),
        (UnknownClosure, LookupError),
        (ClosureNameTaken, ValueError),
    ],
)
def test_errors_keep_their_standard_base(cls: type[Exception], standard: type[Exception]) -> None:
    """An error callers caught by a built-in base is still caught by it."""
    assert issubclass(cls, standard) and issubclass(cls, RefcountStarterError)


def test_starter_refused_is_a_start_failure_but_not_a_starter_gone() -> None:
    """StarterRefused (the starter is alive) is not a StarterGone (the spec is a stale copy)."""
    assert issubclass(StarterRefused, StartFailureDied)
    assert not issubclass(StarterRefused, StarterGone)


@pytest.mark.anyio
async def test_a_live_starters_refusal_escapes_except_starter_gone() -> None:
    """A start with a released lease raises StarterRefused, which ``except StarterGone`` lets through."""

    async def worker(p: Process) -> None:
        await p.receive(type(None))

    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "db")
        starter.child_start.release(sup, "db", lease)
        with pytest.raises(StarterRefused) as info:
            try:
                await starter.child_start.start(sup, "db", lease)
            except StarterGone:
                pytest.fail("a refusal from a live starter was caught as StarterGone")
        assert info.value.refusal is Refusal.NOT_HOLDER and info.value.starter == starter.pid
        assert isinstance(info.value, RefcountStarterError)
        assert node.is_alive(starter.pid)
        await starter.release()


@pytest.mark.anyio
async def test_runtime_errors_are_caught_by_the_root() -> None:
    """A refused registration is caught by ``except RefcountStarterError``, as by ValueError."""
    async with Node() as node, node.process() as a, node.process() as b:
        a.register("svc")
        with pytest.raises(RefcountStarterError) as info:
            b.register("svc")
        assert isinstance(info.value, NameTaken) and isinstance(info.value, ValueError)
        assert "'svc'" in str(info.value)
        assert node.whereis("svc") == a.pid
