"""The supervisor's and the starter's types cross nodes: round trips through the codec; and
the golden file that pins every wire name of the project and its field order."""

from __future__ import annotations

import enum
import inspect
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

from refcount_starter.remote import service as _remote_service  # noqa: F401  (registers its types)
from refcount_starter.remote.codec import (
    Unencodable,
    decode,
    encode,
    refuse_type,
    register_type,
    registered_name,
)
from refcount_starter.remote.registry import by_name
from refcount_starter.runtime import Crashed, NoConnection, NoProc, Normal, Pid, Ref, Shutdown
from refcount_starter.starter import client as starter_client
from refcount_starter.starter import errors as starter_errors
from refcount_starter.starter import protocol as starter_protocol
from refcount_starter.starter import service as starter_service
from refcount_starter.starter.client import StarterLease, StarterProcess
from refcount_starter.starter.errors import StarterRefused
from refcount_starter.starter.protocol import Refusal, ReplyAcquired, ReplyRefused, StarterStatistics
from refcount_starter.supervisor import (
    INTRINSIC,
    RIGHT_TO_LEFT,
    SUPERVISOR,
    TEMPORARY,
    AlreadyRunning,
    BadClosure,
    Child,
    ChildNotFound,
    ChildNotStopped,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStartIgnored,
    ChildStopped,
    DuplicateChild,
    FailedToStartChild,
    InitIgnored,
    ParallelShutdown,
    ReachedMaxRestartIntensity,
    RestartAll,
    RestartEach,
    RestartLimit,
    RestartOne,
    RunClosure,
    SequentialShutdown,
    StarterGone,
    StartFailureDied,
    StopImmediately,
    StopTimeout,
    SupervisedChildRestarting,
    SupervisedChildStarted,
    SupervisorBranchRestarted,
    SupervisorExited,
    SupervisorShutdown,
    SupervisorStatistics,
)
from refcount_starter.supervisor import errors as sup_errors
from refcount_starter.supervisor import events as sup_events
from refcount_starter.supervisor import messages as sup_messages
from refcount_starter.supervisor import reasons as sup_reasons
from refcount_starter.supervisor import spec as sup_spec
from refcount_starter.supervisor import state as sup_state
from refcount_starter.supervisor import strategy as sup_strategy
from refcount_starter.supervisor.start import LocalStart

A = Pid("a", 1700000000000001, 7)
B = Pid("b", 1700000000000002, 3)
REF = Ref("b", 1700000000000002, 11)


async def _worker(p: Any) -> None:
    pass


def _round_trip(value: Any) -> Any:
    copy = decode(encode(value))
    assert type(copy) is type(value)
    return copy


SPECS = [
    ChildSpec("db", RunClosure.of("app.db", "postgres://x", (1, 2), {"k": frozenset({3})})),
    ChildSpec("db", StarterProcess(A), restart=TEMPORARY, shutdown=StopImmediately()),
    ChildSpec("sup", RunClosure("app.tree"), type=SUPERVISOR, restart=INTRINSIC),
    ChildSpec("w", RunClosure("w"), shutdown=StopTimeout.infinity(), restart_delay=0.5, registered_name="w1"),
]

VALUES: list[Any] = [
    *SPECS,
    # The client's requests and the supervisor's own messages.
    sup_messages.AwaitInit(),
    sup_messages.AddChild(SPECS[0]),
    sup_messages.StartNewChild(SPECS[1]),
    sup_messages.StartChild("db"),
    sup_messages.RestartChild("db"),
    sup_messages.TerminateChild("db"),
    sup_messages.DeleteChild("db"),
    sup_messages.LookupChild("db"),
    sup_messages.ListChildren(),
    sup_messages.GetStatistics(),
    sup_messages.Subscribe(B),
    sup_messages.Unsubscribe(B),
    sup_messages.RetryRestart("db", 3, Crashed("ValueError", "boom"), "left"),
    # Replies.
    ChildRunning(A),
    ChildRestarting(None),
    ChildRestarting(A),
    ChildStopped(),
    ChildStartIgnored(),
    Child("db", ChildRunning(A), SPECS[1]),
    [Child("db", ChildStopped(), SPECS[0]), Child("w", ChildRestarting(B), SPECS[3])],
    SupervisorStatistics(2, 1, 2, 0, 1, 0, 5),
    # Exit reasons and events.
    ReachedMaxRestartIntensity("db", Crashed("ValueError", "boom", "Traceback...")),
    FailedToStartChild("db", NoProc(A, Normal(), 1.5)),
    InitIgnored(),
    SupervisedChildStarted(B, "db", A),
    SupervisedChildRestarting(B, "db", None, Shutdown(("db", 3))),
    SupervisorBranchRestarted(B, "db", NoConnection("a"), ("x", "db")),
    SupervisorShutdown(B, Shutdown()),
    # Strategies.
    RestartOne(RestartLimit(3, 2.5)),
    RestartAll(RestartLimit(0, 1.0), RestartEach(RIGHT_TO_LEFT)),
    SequentialShutdown(),
    ParallelShutdown(),
    # The starter's messages, leases and statistics.
    starter_service.AcquireRef("db", 4),
    starter_service.StartChild("db", 4, REF),
    starter_service.ReleaseOwnerRef(),
    starter_service.GetStatistics(),
    starter_service.Started(A),
    starter_service.Unsupported(("what", 1)),
    ReplyAcquired(B, "db", 4),
    ReplyRefused(Refusal.HOLDER_DOWN),
    starter_protocol.ReplyReleased(),
    StarterLease(A, "db", 4),
    StarterStatistics(
        owner=A,
        owner_holds=False,
        holders=frozenset({B}),
        references={(B, "db"): 4, (B, "cache"): 9},
        spurious_releases=1,
        children_started=12,
        stopped=False,
    ),
    # The release signal's reason: a tuple must come back a tuple.
    Shutdown(("db", 4)),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip_with_their_types(value: Any) -> None:
    assert _round_trip(value) == value


def test_a_spec_keeps_its_start_and_the_closure_its_argument_types() -> None:
    copy = _round_trip(SPECS[0])
    assert type(copy.start) is RunClosure
    assert copy.start.args == ("postgres://x", (1, 2), {"k": frozenset({3})})
    assert type(copy.start.args[1]) is tuple
    assert _round_trip(SPECS[3]).shutdown.seconds == math.inf
    stats = _round_trip(VALUES[-2])
    assert set(stats.references) == {(B, "db"), (B, "cache")}


ERRORS: list[BaseException] = [
    StartFailureDied("db", Crashed("ValueError", "boom")),
    StarterGone("db", A, NoProc(A, Normal(), 1700000000.0)),
    StarterGone("db", A, NoConnection("a")),
    StarterRefused("db", A, Refusal.STOPPED),
    DuplicateChild("db", ChildRunning(A)),
    DuplicateChild("db", None),
    AlreadyRunning("db", ChildRestarting(None)),
    BadClosure("db", "app.nope", "no function is registered as 'app.nope'"),
    ChildNotFound("db"),
    ChildNotStopped("db", ChildRunning(A)),
    SupervisorExited(B, Shutdown()),
    TypeError("supervisor <b.2.3> does not understand the request 'x'"),
    ValueError("bad", 3),
    KeyError("db"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_typed_errors_round_trip_in_a_failed_reply(error: BaseException) -> None:
    copy = _round_trip(sup_messages.Failed(error)).error
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    for name in ("key", "starter", "reason", "state", "name", "detail", "supervisor", "refusal"):
        if hasattr(error, name):
            assert getattr(copy, name) == getattr(error, name)


def test_stale_copy_message_names_the_starter_pid_after_a_round_trip() -> None:
    error = _round_trip(StarterGone("db", A, NoProc(A, Normal(), 1700000000.0)))
    assert str(A) in str(error) and "stale copy" in str(error)


def test_a_local_start_cannot_travel_and_says_what_to_use() -> None:
    spec = ChildSpec.worker("db", _worker)
    assert type(spec.start) is LocalStart
    with pytest.raises(
        Unencodable, match=r"value\.start \(type .*LocalStart\) cannot cross nodes.*RunClosure"
    ):
        encode(spec)
    with pytest.raises(TypeError, match=r"value\.spec\.start \(type .*LocalStart\)"):
        encode(sup_messages.StartNewChild(spec))
    # A supervisor child spec starts through a LocalStart too.
    with pytest.raises(TypeError, match="LocalStart"):
        encode(ChildSpec.supervisor("tree", RestartOne()))


def test_run_closure_leaves_its_table_behind() -> None:
    from refcount_starter.remote.closures import RemoteTable

    closure = RunClosure("app.db", (1,), RemoteTable())
    copy = _round_trip(closure)
    assert copy == closure and copy.table is not closure.table


def _public_classes(module: Any) -> list[type]:
    names = getattr(module, "__all__", [name for name in vars(module) if not name.startswith("_")])
    found = []
    for name in names:
        value = getattr(module, name)
        if isinstance(value, type) and value.__module__ == module.__name__:
            found.append(value)
    return found


@pytest.mark.parametrize(
    "module",
    [sup_messages, sup_state, sup_reasons, sup_events, sup_errors, sup_spec, sup_strategy],
    ids=lambda m: m.__name__.rsplit(".", 1)[1],
)
def test_every_supervisor_value_type_is_registered(module: Any) -> None:
    missing = []
    for cls in _public_classes(module):
        if inspect.isabstract(cls) or cls in (sup_reasons.ChildInitIgnore, sup_errors.SupervisorError):
            continue  # raised in a child, never sent; or an abstract base
        if cls is sup_events.SupervisorEvent:
            continue  # the events' base class; only its subclasses are sent
        travels = attrs.has(cls) or issubclass(cls, enum.Enum | BaseException)
        if travels and registered_name(cls) is None:
            missing.append(cls.__qualname__)
    assert not missing


def test_the_starters_travelling_types_are_registered() -> None:
    for cls in (
        starter_client.StarterProcess,
        starter_client.StarterLease,
        starter_errors.StarterRefused,
        starter_protocol.Refusal,
        starter_protocol.StarterStatistics,
        starter_protocol.ReplyAcquired,
        starter_protocol.ReplyRefused,
        starter_protocol.ReplyReleased,
        *(
            getattr(starter_service, name)
            for name in starter_service.__all__
            if isinstance(getattr(starter_service, name), type)
        ),
    ):
        assert registered_name(cls) is not None, cls


def test_wire_names_do_not_clash_between_the_supervisor_and_the_starter() -> None:
    assert registered_name(sup_messages.StartChild) != registered_name(starter_service.StartChild)
    assert registered_name(sup_messages.GetStatistics) != registered_name(starter_service.GetStatistics)


def test_exceptions_register_by_args_or_by_fields() -> None:
    class Positional(Exception):
        pass

    class Keyworded(Exception):
        def __init__(self, what: str, count: int) -> None:
            super().__init__(f"{what} x{count}")
            self.what = what
            self.count = count

    register_type(Positional, "test.wire.Positional")
    register_type(Keyworded, "test.wire.Keyworded", fields=("what", "count"))
    copy = _round_trip(Positional("a", (1, 2)))
    assert copy.args == ("a", (1, 2))
    keyed = _round_trip(Keyworded("tea", 2))
    assert (keyed.what, keyed.count, str(keyed)) == ("tea", 2, "tea x2")

    class Opaque(Exception):
        def __init__(self, *, secret: int) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="not a keyword argument"):
        register_type(Opaque, "test.wire.Opaque", fields=("nothing",))


def test_refused_and_registered_types_exclude_each_other() -> None:
    @attrs.frozen
    class Handle:
        fd: int

    refuse_type(Handle, "a handle is local to its process")
    with pytest.raises(TypeError, match="a handle is local"):
        encode([Handle(3)])
    with pytest.raises(ValueError, match="never crossing"):
        register_type(Handle, "test.wire.Handle")
    with pytest.raises(ValueError, match="it can travel"):
        refuse_type(ChildStopped, "nope")


def test_the_registrations_need_no_msgspec() -> None:
    """Importing the supervisor and the starter registers their types without msgspec."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["msgspec"] = None  # any import of msgspec now fails
        import refcount_starter.supervisor, refcount_starter.starter
        from refcount_starter.remote.registry import registered_name
        from refcount_starter.supervisor import ChildSpec
        from refcount_starter.starter import StarterProcess
        assert registered_name(ChildSpec) and registered_name(StarterProcess)
        assert "msgspec" not in {m for m, v in sys.modules.items() if v is not None}
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


# -- the golden file ----------------------------------------------------------------------

GOLDEN = Path(__file__).with_name("golden_wire.json")
GOLDEN_HOW_TO = (
    "the project's wire names are part of the protocol (ADR-0008): a change here breaks "
    "nodes of other versions. If the change is meant (a new type, a field added with a "
    "default), record it in the ADR and rewrite the golden file with "
    "`.venv/bin/python -m tests.remote.test_wire_types`, then review its diff"
)


def project_wire_types() -> dict[str, dict[str, Any]]:
    """Every wire name of the project (``rs.*``), with what travels, in wire order: the
    fields of an attrs class or a named tuple, the member names of an enum, or ``args``."""
    described: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(by_name.items()):
        if not name.startswith("rs."):
            continue  # a test's or an application's own type
        if entry.fields is None:
            described[name] = {"enum": [member.name for member in entry.cls]}  # type: ignore[attr-defined]
        elif entry.positional:
            described[name] = {"args": True}
        else:
            described[name] = {"fields": [field for field, _ in entry.fields]}
    return described


def golden_text(described: dict[str, dict[str, Any]]) -> str:
    """The golden file's text: one wire type per line, sorted by wire name."""
    lines = [f"  {json.dumps(name)}: {json.dumps(what)}" for name, what in sorted(described.items())]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def test_every_wire_name_and_its_field_order_is_pinned() -> None:
    """Every registered wire name of the project, and its fields in wire order, is in the
    golden file, and nothing else is: renaming a class, reordering or renaming its fields, or
    dropping a registration shows here."""
    golden = json.loads(GOLDEN.read_text())
    current = project_wire_types()
    added = sorted(current.keys() - golden.keys())
    gone = sorted(golden.keys() - current.keys())
    changed = {
        name: (golden[name], current[name])
        for name in golden.keys() & current.keys()
        if golden[name] != current[name]
    }
    assert not added and not gone and not changed, (
        f"wire types added: {added}; gone: {gone}; changed (golden, now): {changed}. {GOLDEN_HOW_TO}"
    )


def test_the_golden_file_is_in_its_canonical_form() -> None:
    """The golden file reads one type per line, sorted, so that its diffs are readable."""
    assert GOLDEN.read_text() == golden_text(json.loads(GOLDEN.read_text()))


def test_renaming_every_class_changes_no_wire_name() -> None:
    """Every registration site writes its wire names out: with every class of the project
    renamed before its registration runs, the registered names are still the golden ones."""
    script = textwrap.dedent(
        """
        import importlib, json, sys, types

        def rename_classes_of(prefix):
            for module_name, module in list(sys.modules.items()):
                if module is None or not module_name.startswith(prefix):
                    continue
                for value in list(vars(module).values()):
                    if isinstance(value, type) and value.__module__ == module_name:
                        value.__name__ = "Renamed" + value.__name__
                        value.__qualname__ = "Renamed" + value.__qualname__

        # The package, with the wire modules held back: nothing is registered yet.
        wires = ("refcount_starter.supervisor.wire", "refcount_starter.starter.wire")
        for wire in wires:
            sys.modules[wire] = types.ModuleType(wire)
        import refcount_starter, refcount_starter.remote.errors
        assert "refcount_starter.remote.registry" not in sys.modules
        rename_classes_of("refcount_starter.")
        # Now the registrations: the registry's own (the runtime's types), then the others.
        for wire in wires:
            del sys.modules[wire]
            importlib.import_module(wire)
        import refcount_starter.remote.service
        from refcount_starter.runtime import Pid
        assert Pid.__name__ == "RenamedPid"
        from tests.remote.test_wire_types import project_wire_types
        print(json.dumps(project_wire_types()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    GOLDEN.write_text(golden_text(project_wire_types()))
    print(f"wrote {GOLDEN}")
