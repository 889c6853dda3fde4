"""The registry of the types that may cross nodes, by stable wire name.

It needs neither msgspec nor nats-py, so that any module (the supervisor's ``ChildSpec``, the
starter's messages) can register its types without the ``nats`` extra installed. The codec
(``codec.py``) encodes exactly the registered classes. See ADR-0008.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterable, Sequence

import attrs

from ..runtime import pid as _pid
from ..runtime import reasons as _reasons
from ..runtime import signals as _signals
from . import errors as _errors

__all__ = [
    "is_registered",
    "refuse_type",
    "refusal_of",
    "register_type",
    "registered_name",
    "registered_types",
    "registers",
]


@attrs.frozen
class Entry:
    cls: type
    name: str
    # For attrs classes (and exceptions registered with fields): (attribute name, init
    # keyword) in order; None for an Enum.
    fields: tuple[tuple[str, str], ...] | None
    # An exception registered without fields: it travels as its ``args`` and is rebuilt as
    # ``cls(*args)``.
    positional: bool = False
    # An attrs class whose travelling fields are all its ``__init__`` arguments, in order and
    # none keyword-only: rebuilt as ``cls(*values)``, cheaper than by keywords.
    in_order: bool = False


# Invariant: by_type and by_name hold the same entries, each under its own key.
by_type: dict[type, Entry] = {}
by_name: dict[str, Entry] = {}
# Classes that must never cross nodes, with the sentence that says why (for Unencodable).
refused: dict[type, str] = {}


def register_type(cls: type, name: str, *, fields: Sequence[str] | None = None) -> None:
    """Make instances of ``cls`` encodable, under the stable wire name ``name``.

    ``cls`` must be an attrs class whose fields go through ``__init__``, an ``enum.Enum``,
    an exception class, or a named tuple (``_fields``, rebuilt positionally, as ``Pid``). An exception travels as its ``args`` (rebuilt as
    ``cls(*args)``), or, with ``fields``, as those attributes, rebuilt as
    ``cls(**{field: value})`` (for an exception whose ``__init__`` takes other arguments than
    it passes on as ``args``). Its traceback, cause and notes stay behind. Every node that
    exchanges such values must register the same class under the same name. Registering the
    same class under the same name again changes nothing.

    Args:
        cls: The class.
        name: Its stable wire name, e.g. ``"refcount_starter.supervisor.ChildSpec"``.
        fields: The names of the fields that travel, for an attrs class with fields that
            must not (a local registry, a cache); the others take their defaults on the
            receiving node. All ``__init__`` fields by default. For an exception: the
            attributes that travel, each also an ``__init__`` keyword.

    Raises:
        TypeError: ``cls`` is not an attrs class, an Enum or an exception, or a travelling
            field is not an ``__init__`` argument, or a field left out has no default, or
            ``name`` is not a non-empty str.
        ValueError: ``name`` is taken by another class, or ``cls`` is registered under
            another name.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a wire name must be a non-empty str, got {name!r}")
    if not isinstance(cls, type):
        raise TypeError(f"register_type takes a class, got {cls!r}")
    travelling: tuple[tuple[str, str], ...] | None
    positional = in_order = False
    if issubclass(cls, enum.Enum):
        travelling = None
    elif issubclass(cls, BaseException) and not attrs.has(cls):
        if fields is None:
            travelling, positional = (), True
        else:
            parameters = inspect.signature(cls).parameters
            for field in fields:
                parameter = parameters.get(field)
                if parameter is None or parameter.kind not in (
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.KEYWORD_ONLY,
                ):
                    raise TypeError(
                        f"cannot register {cls.__qualname__}: {field!r} is not a keyword argument "
                        "of its __init__, so a decoded copy could not be built"
                    )
            travelling = tuple((field, field) for field in fields)
    elif issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple) and fields is None:
        # A named tuple (Pid, Ref): its fields, rebuilt positionally.
        travelling = tuple((field, field) for field in getattr(cls, "_fields"))  # noqa: B009
        in_order = True
    elif attrs.has(cls):
        specs = attrs.fields(cls)
        chosen = [spec.name for spec in specs] if fields is None else list(fields)
        field_specs = {spec.name: spec for spec in specs}
        for field in chosen:
            if field not in field_specs:
                raise TypeError(f"cannot register {cls.__qualname__}: it has no field {field!r}")
            if not field_specs[field].init:
                raise TypeError(
                    f"cannot register {cls.__qualname__}: its field {field!r} is not an "
                    "__init__ argument, so a decoded copy could not be built"
                )
        for spec in specs:
            if spec.name not in chosen and spec.init and spec.default is attrs.NOTHING:
                raise TypeError(
                    f"cannot register {cls.__qualname__}: the field {spec.name!r} does not travel "
                    "and has no default"
                )
        travelling = tuple((field, field_specs[field].alias or field) for field in chosen)
        init_order = [spec.name for spec in specs if spec.init]
        in_order = (
            chosen == init_order
            and not any(spec.kw_only for spec in specs if spec.init)
            and not hasattr(cls, "__attrs_init__")  # attrs wrote __init__, not the class
        )
    else:
        raise TypeError(
            f"cannot register {cls.__module__}.{cls.__qualname__}: only attrs classes, "
            "enum.Enum subclasses and exceptions can cross nodes"
        )
    known = by_name.get(name)
    if known is not None and known.cls is not cls:
        raise ValueError(
            f"the wire name {name!r} is already registered for "
            f"{known.cls.__module__}.{known.cls.__qualname__}"
        )
    mine = by_type.get(cls)
    if mine is not None and mine.name != name:
        raise ValueError(f"{cls.__qualname__} is already registered under the wire name {mine.name!r}")
    if cls in refused:
        raise ValueError(f"{cls.__qualname__} is marked as never crossing nodes (refuse_type)")
    entry = Entry(cls, name, travelling, positional, in_order)
    by_type[cls] = entry
    by_name[name] = entry


def refuse_type(cls: type, why: str) -> None:
    """Mark ``cls`` as never crossing nodes: encoding one raises ``Unencodable`` with ``why``.

    For a type that cannot travel by design (a local function, an open resource), so that
    the sender reads why, and what to use instead, rather than a bare "not registered".

    Args:
        cls: The class.
        why: The sentence the ``Unencodable`` carries, e.g. "a LocalStart holds a local
            function; use a RunClosure".

    Raises:
        ValueError: ``cls`` is registered (it can travel).
    """
    if cls in by_type:
        raise ValueError(f"{cls.__qualname__} is registered under {by_type[cls].name!r}; it can travel")
    refused[cls] = why


def refusal_of(cls: type) -> str | None:
    """Why ``cls`` never crosses nodes (``refuse_type``), or ``None``."""
    return refused.get(cls)


def is_registered(cls: type) -> bool:
    """Whether instances of ``cls`` can be encoded."""
    return cls in by_type


def registered_name(cls: type) -> str | None:
    """The wire name ``cls`` is registered under, or ``None``."""
    entry = by_type.get(cls)
    return None if entry is None else entry.name


def registered_types() -> dict[str, type]:
    """Every registered class, by wire name."""
    return {name: entry.cls for name, entry in by_name.items()}


# -- the project's own types ----------------------------------------------------------------
# Each wire name is written out, never derived from the class's name, so that renaming a
# class cannot change the protocol; tests/remote/golden_wire.json pins them all (ADR-0008).


def _register_all(pairs: Iterable[tuple[type, str]]) -> None:
    for cls, name in pairs:
        register_type(cls, name)


_register_all(
    (
        (_pid.Pid, "rs.pid.Pid"),
        (_pid.Ref, "rs.pid.Ref"),
        (_reasons.Normal, "rs.reason.Normal"),
        (_reasons.Shutdown, "rs.reason.Shutdown"),
        (_reasons.Killed, "rs.reason.Killed"),
        (_reasons.Kill, "rs.reason.Kill"),
        (_reasons.Crashed, "rs.reason.Crashed"),
        (_reasons.NoProc, "rs.reason.NoProc"),
        (_reasons.NoConnection, "rs.reason.NoConnection"),
        (_reasons.ExitSignal, "rs.reason.ExitSignal"),
        (_reasons.Down, "rs.reason.Down"),
        (_signals.Call, "rs.signal.Call"),
        (_signals.Reply, "rs.signal.Reply"),
        (_signals.MessageSignal, "rs.signal.MessageSignal"),
        (_signals.NamedMessageSignal, "rs.signal.NamedMessageSignal"),
        (_signals.LinkSignal, "rs.signal.LinkSignal"),
        (_signals.UnlinkSignal, "rs.signal.UnlinkSignal"),
        (_signals.ExitSignalSent, "rs.signal.ExitSignalSent"),
        (_signals.MonitorSignal, "rs.signal.MonitorSignal"),
        (_signals.DemonitorSignal, "rs.signal.DemonitorSignal"),
        (_signals.DownSignal, "rs.signal.DownSignal"),
        (_signals.CallSignal, "rs.signal.CallSignal"),
        (_signals.ReplySignal, "rs.signal.ReplySignal"),
        # Builtin exceptions travel as their args, so that a reply carrying one (a
        # supervisor's ``Failed(TypeError(...))``) can cross nodes.
        (Exception, "rs.exc.Exception"),
        (ArithmeticError, "rs.exc.ArithmeticError"),
        (AssertionError, "rs.exc.AssertionError"),
        (KeyError, "rs.exc.KeyError"),
        (LookupError, "rs.exc.LookupError"),
        (NotImplementedError, "rs.exc.NotImplementedError"),
        (RuntimeError, "rs.exc.RuntimeError"),
        (TimeoutError, "rs.exc.TimeoutError"),
        (TypeError, "rs.exc.TypeError"),
        (ValueError, "rs.exc.ValueError"),
        (ZeroDivisionError, "rs.exc.ZeroDivisionError"),
        # The codec's own refusal, so that a reply can carry it (a supervisor's ``Failed``).
        (_errors.Unencodable, "rs.remote.Unencodable"),
    )
)


def registers(name: str) -> Callable[[type], type]:
    """Class decorator form of ``register_type``: ``@registers("app.Order")``."""

    def register(cls: type) -> type:
        register_type(cls, name)
        return cls

    return register
