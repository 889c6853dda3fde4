"""OpenTelemetry spans for calls, child starts (through starters too), spawns and exit signals.

``instrument()`` wraps the public methods that carry these (``Process.call``, ``receive``,
``messages``, ``reply``, ``exit``, ``spawn``, ``spawn_for``, ``Node.exit`` and the starter's
``StarterProcess.acquire``/``start``/``acquire_and_start``), as OpenTelemetry's own
instrumentations do; ``uninstrument()`` puts the originals back. Until ``instrument()`` is
called nothing is wrapped, so tracing costs nothing when it is not wanted.

How a trace follows a request from process to process: a caller's span context is kept,
keyed by the caller's pid, for as long as its call waits (a process makes one call at a
time). When the callee receives that ``Call``, it starts a ``handle`` span under it and makes
it current in its own task until it replies (or takes its next ``Call``), so the calls,
spawns and exit signals it makes meanwhile join the caller's trace. The context each exit
signal was sent in is kept the same way, by sender and target, so that the ``Down`` or
``ExitSignal`` a supervisor or a starter takes for it continues that trace.

Nodes in one OS process share these tables. Across OS processes the transport carries the
context in the headers of the message that holds the signal: ``signal_headers(signal)`` on
the sending side gives them for a call, an exit signal or a ``Down`` (W3C ``traceparent``,
and ``tracestate`` when there is one, as OpenTelemetry's global propagator writes them), and
``adopt_signal_headers(signal, headers)`` on the receiving side puts the context where the
tables would hold it had the sender been in this OS process, before the signal is
delivered. Those headers come from the network: only the propagator's own fields are read,
as text of at most 8 KiB, and only a valid context is kept, so that anything else leaves
the signal untraced and nothing raises. ``instrumented`` tells a transport whether to look
at all, for the price of one attribute read. ``headers_for(pid)`` and
``adopt_headers(pid, headers)`` do the same for a call alone. See "Tracing" in
docs/nats.md.

Needs the ``otel`` extra (``pip install 'refcount_starter[otel]'``) and an SDK with an
exporter of your choice (see ``docs/observer.md``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .runtime import Call, Down, ExitSignal, Node, Pid, Process
from .runtime.signals import CallSignal, DownSignal, ExitSignalSent, Signal

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "adopt_headers",
    "adopt_signal_headers",
    "headers_for",
    "instrument",
    "instrumented",
    "is_instrumented",
    "signal_headers",
    "span",
    "uninstrument",
]

#: The instrumentation scope's name: the tracer every span comes from.
SCOPE = "refcount_starter"

#: Whether ``instrument()`` is in force (read it, never set it): what a transport reads once
#: per signal, so that not tracing costs it one attribute read.
#: Invariant: ``instrumented is (_tracer is not None)``.
instrumented = False

_tracer: Tracer | None = None
_originals: list[tuple[type, str, Any]] = []
# The span context of each caller whose call is waiting, by the caller's pid (a process makes
# one call at a time). Invariant: an entry lives only while its call waits.
_calls: dict[Pid, Any] = {}
# Contexts that arrived from another OS process with a call, by the caller's pid; taken by
# the callee when it receives the call. Bounded, as a call may never be taken (its callee
# died) and its caller is named by the network: the oldest are forgotten.
_arrived: OrderedDict[Pid, Any] = OrderedDict()
# The context each exit signal was sent in, by (sender, target) and by target alone, so that
# the ``ExitSignal`` a trapping target takes, or the ``Down`` its watchers take when it dies,
# continues the trace that sent it. Bounded: the oldest are forgotten.
_exit_contexts: OrderedDict[tuple[Pid, Pid] | Pid, Any] = OrderedDict()
_MAX_EXIT_CONTEXTS = 10_000
_MAX_ARRIVED = 10_000
# The longest header value taken from the network (W3C Baggage's limit for the whole header;
# a traceparent is 55 characters): anything longer is ignored unread.
_MAX_HEADER_VALUE = 8192
# In a process's task: the handle span of the call it is handling, and the token that made
# it current.
_handling: contextvars.ContextVar[tuple[Span, object] | None] = contextvars.ContextVar(
    "refcount_starter_handling", default=None
)


def is_instrumented() -> bool:
    """Whether ``instrument()`` is in force."""
    return instrumented


def instrument(tracer_provider: TracerProvider | None = None) -> None:
    """Start making spans (again, with a new provider, if already instrumented).

    Args:
        tracer_provider: Where the spans go; OpenTelemetry's global provider by default.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (the ``otel`` extra).
    """
    global _tracer, instrumented
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ImportError(
            f"tracing needs the otel extra (pip install 'refcount_starter[otel]'): {exc}"
        ) from None
    from . import __version__
    from .starter.client import StarterProcess

    uninstrument()
    _tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
    instrumented = True
    for cls, name, make in (
        (Process, "call", _wrap_call),
        (Process, "receive", _wrap_receive),
        (Process, "messages", _wrap_messages),
        (Process, "reply", _wrap_reply),
        (Process, "exit", _wrap_exit),
        (Process, "spawn", _wrap_spawn),
        (Process, "spawn_for", _wrap_spawn_for),
        (Node, "exit", _wrap_node_exit),
        (StarterProcess, "acquire", _wrap_starter("acquire")),
        (StarterProcess, "start", _wrap_starter("start")),
        (StarterProcess, "acquire_and_start", _wrap_starter("acquire_and_start")),
    ):
        original = cls.__dict__[name]
        _originals.append((cls, name, original))
        # The wrapper keeps the original's name and docstring (help() reads the same).
        setattr(cls, name, functools.update_wrapper(make(original), original))


def uninstrument() -> None:
    """Stop making spans: put every wrapped method back as it was."""
    global _tracer, instrumented
    while _originals:
        cls, name, original = _originals.pop()
        setattr(cls, name, original)
    _tracer = None
    instrumented = False
    _calls.clear()
    _arrived.clear()
    _exit_contexts.clear()


@contextlib.contextmanager
def span(name: str, **attributes: str | int | bool) -> Iterator[None]:
    """A span around a block, when instrumented (for a restart, in a supervisor); a no-op
    otherwise.

    Args:
        name: The span's name (``"restart"``).
        **attributes: Its attributes (``supervisor=str(pid)``, ``key="db"``), each
            recorded as ``rs.<name>``.
    """
    tracer = _tracer
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes={f"rs.{k}": v for k, v in attributes.items()}):
        yield


def headers_for(sender: Pid) -> dict[str, str]:
    """The headers that carry ``sender``'s waiting call's trace context to another OS process
    (empty when not instrumented or not calling).

    Args:
        sender: The pid of the process whose call is being sent.
    """
    context = _calls.get(sender)
    return {} if context is None else _inject(context)


def adopt_headers(sender: Pid, headers: Mapping[str, object]) -> None:
    """Keep the trace context that arrived in ``headers`` with a call from ``sender``: the
    callee's ``handle`` span joins that trace. Headers without a valid context are ignored.

    Args:
        sender: The calling process (of another OS process).
        headers: The message's headers (as ``headers_for`` made them, or anything at all:
            they come from the network).
    """
    if _tracer is None:
        return
    context = _extract(headers)
    if context is not None:
        _keep(_arrived, sender, context, _MAX_ARRIVED)


def signal_headers(signal: Signal) -> dict[str, str] | None:
    """The headers that carry the trace a signal continues to another OS process: a call's
    (its caller's ``call`` span), an exit signal's or a ``Down``'s (the context of the exit
    signal that caused it). None for other signals, or when there is no trace to carry.

    Args:
        signal: A signal the transport is sending to another node.
    """
    match signal:
        case CallSignal():
            context = _calls.get(signal.sender)
        case ExitSignalSent():
            # The keys the receiver looks for (see _adopt), in the same order.
            context = _exit_contexts.get((signal.sender, signal.to)) or _exit_contexts.get(signal.sender)
        case DownSignal():
            context = _exit_contexts.get(signal.pid)
        case _:
            return None
    return (_inject(context) or None) if context else None


def adopt_signal_headers(signal: Signal, headers: Mapping[str, object]) -> None:
    """Keep the trace context that arrived in ``headers`` with ``signal`` from another OS
    process, where this process's tables would hold it had the sender been in it: the
    callee's ``handle`` span, or the ``handle ExitSignal``/``handle Down`` span of a
    supervisor or starter taking the exit, continues the sender's trace. Headers come from
    the network: values that are not text or longer than 8 KiB, and contexts that are not
    valid, are ignored (the signal is then handled untraced); nothing here raises.

    Args:
        signal: The signal the headers came with, about to be delivered.
        headers: The NATS message's headers.
    """
    if _tracer is None or type(signal) not in (CallSignal, ExitSignalSent, DownSignal):
        return
    context = _extract(headers)
    if context is None:
        return
    match signal:
        case CallSignal():
            _keep(_arrived, signal.sender, context, _MAX_ARRIVED)
        case ExitSignalSent():
            _keep(_exit_contexts, (signal.sender, signal.to), context, _MAX_EXIT_CONTEXTS)
            if not signal.linked:
                # As Process.exit keeps it: the target's own exit continues this trace.
                _keep(_exit_contexts, signal.to, context, _MAX_EXIT_CONTEXTS)
        case DownSignal():
            _keep(_exit_contexts, signal.pid, context, _MAX_EXIT_CONTEXTS)


def _inject(context: Any) -> dict[str, str]:
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def _extract(headers: Mapping[str, object]) -> Any:
    """The valid trace context in ``headers`` (untrusted), or None."""
    from opentelemetry import propagate, trace

    propagator = propagate.get_global_textmap()
    # Only the propagator's own fields, as text of a sane length: the rest is never read.
    carrier: dict[str, str] = {}
    try:
        folded: dict[str, object] | None = None
        for field in propagator.fields:
            value = headers.get(field)
            if value is None:
                # Header names are case-insensitive (W3C Trace Context, after HTTP): another
                # NATS client may send ``Traceparent``. Folded once, only when needed.
                if folded is None:
                    folded = {k.lower(): v for k, v in headers.items() if type(k) is str}
                value = folded.get(field.lower())
            if type(value) is str and len(value) <= _MAX_HEADER_VALUE:
                carrier[field] = value
        if not carrier:
            return None
        context = propagator.extract(carrier)
    except Exception:
        return None  # a propagator that chokes on what it was given: no trace, as for garbage
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def _keep(table: OrderedDict[Any, Any], key: Hashable, context: Any, limit: int) -> None:
    table[key] = context
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


# -- the wrappers ---------------------------------------------------------------------------


def _attributes(p: Process, **more: str) -> dict[str, str]:
    return {"rs.node": p.node.name, "rs.pid": str(p.pid), **{f"rs.{k}": v for k, v in more.items()}}


def _wrap_call(original: Any) -> Any:
    async def call(self: Process, to: Any, request: Any, *, timeout: float | None = None) -> Any:
        assert _tracer is not None
        from opentelemetry import context as otel_context
        from opentelemetry.trace import SpanKind

        name = f"call {type(request).__name__}"
        with _tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=_attributes(self, callee=str(to))
        ):
            context = otel_context.get_current()
            pid = self.pid
            _calls[pid] = context
            try:
                return await original(self, to, request, timeout=timeout)
            finally:
                if _calls.get(pid) is context:
                    del _calls[pid]

    return call


def _finish_handling() -> None:
    handling = _handling.get()
    if handling is not None:
        from opentelemetry import context as otel_context

        _handling.set(None)
        handle, token = handling
        handle.end()
        otel_context.detach(token)  # type: ignore[arg-type]


def _adopt(p: Process, message: Any, top: bool) -> None:
    """``p`` took ``message``: a traced call is handled in its caller's trace; an exit that
    reaches a supervisor or a starter at its main loop (``top``: an unfiltered receive) is
    handled in the trace of the exit signal that caused it, if any."""
    if _tracer is None:
        return
    kind = type(message)
    if kind is Call:
        _finish_handling()  # the call it took before is done, answered or not
        sender = message.sender
        context = _arrived.pop(sender, None) or _calls.get(sender)
        if context is not None:
            _handle(p, f"handle {type(message.request).__name__}", context, caller=str(sender))
    elif top and (kind is Down or kind is ExitSignal) and _watched_kind(p):
        if kind is Down:
            cause = _exit_contexts.get(message.pid)
            about = message.pid
        else:
            cause = _exit_contexts.get((message.sender, p.pid)) or _exit_contexts.get(message.sender)
            about = message.sender
        _handle(p, f"handle {kind.__name__}", cause, about=str(about), reason=_reason_text(message.reason))


def _watched_kind(p: Process) -> bool:
    from .observe.kinds import kind_of

    return kind_of(p.info().function) != "process"


def _handle(p: Process, name: str, context: Any, **attributes: str) -> None:
    """Start ``p``'s handle span under ``context`` (a new trace if ``None``) and make it current
    in ``p``'s task until it replies or goes back to its main loop."""
    if context is None:
        # Not the context the process's task inherited from its spawner: a trace of its own.
        from opentelemetry.context import Context

        context = Context()
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    handle = _tracer.start_span(
        name, context=context, kind=SpanKind.SERVER, attributes=_attributes(p, **attributes)
    )
    token = otel_context.attach(trace.set_span_in_context(handle, context))
    _handling.set((handle, token))


def _wrap_receive(original: Any) -> Any:
    def receive(self: Process, match: Any = None, *, where: Any = None, timeout: float | None = None) -> Any:
        # The arguments are checked now, as the original does; the wait is awaited later.
        waiting = original(self, match, where=where, timeout=timeout)
        return _received(self, waiting, match is None and where is None)

    return receive


async def _received(p: Process, waiting: Any, top: bool) -> Any:
    if top:
        # Back at its main loop (an unfiltered receive): whatever it was handling is done.
        _finish_handling()
    message = await waiting
    _adopt(p, message, top)
    return message


def _wrap_messages(original: Any) -> Any:
    def messages(self: Process) -> AsyncIterator[Any]:
        return _TracedMessages(self, original(self))

    return messages


class _TracedMessages:
    __slots__ = ("_inner", "_p")

    def __init__(self, p: Process, inner: AsyncIterator[Any]) -> None:
        self._p = p
        self._inner = inner

    def __aiter__(self) -> _TracedMessages:
        return self

    async def __anext__(self) -> Any:
        _finish_handling()
        message = await self._inner.__anext__()
        _adopt(self._p, message, True)
        return message


def _wrap_reply(original: Any) -> Any:
    def reply(self: Process, call: Call, value: Any) -> None:
        original(self, call, value)
        handling = _handling.get()
        if handling is not None and type(call) is Call:
            _finish_handling()

    return reply


def _reason_text(reason: Any) -> str:
    text = repr(reason)
    return text if len(text) <= 200 else text[:197] + "..."


def _wrap_exit(original: Any) -> Any:
    def exit(self: Process, pid: Pid, reason: Any) -> None:
        assert _tracer is not None
        attributes = _attributes(self, target=str(pid), reason=_reason_text(reason))
        with _tracer.start_as_current_span("exit signal", attributes=attributes):
            _keep_exit_context(self.pid, pid)
            original(self, pid, reason)

    return exit


def _keep_exit_context(sender: Pid, target: Pid) -> None:
    from opentelemetry import context as otel_context

    context = otel_context.get_current()
    for key in ((sender, target), target):
        _keep(_exit_contexts, key, context, _MAX_EXIT_CONTEXTS)


def _wrap_node_exit(original: Any) -> Any:
    def exit(self: Node, pid: Pid, reason: Any) -> None:
        assert _tracer is not None
        attributes = {"rs.node": self.name, "rs.target": str(pid), "rs.reason": _reason_text(reason)}
        with _tracer.start_as_current_span("exit signal", attributes=attributes):
            _keep_exit_context(self.pid, pid)
            original(self, pid, reason)

    return exit


def _function_name(fn: Any) -> str:
    inner = getattr(fn, "func", fn)
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', type(inner).__qualname__)}"


def _wrap_spawn(original: Any) -> Any:
    def spawn(self: Process, fn: Any, *args: Any, **kwargs: Any) -> Pid:
        assert _tracer is not None
        with _tracer.start_as_current_span(
            "spawn", attributes=_attributes(self, function=_function_name(fn))
        ) as s:
            pid: Pid = original(self, fn, *args, **kwargs)
            s.set_attribute("rs.child", str(pid))
            return pid

    return spawn


def _wrap_spawn_for(original: Any) -> Any:
    def spawn_for(self: Process, owner: Pid, ref: Any, fn: Any, *args: Any, **kwargs: Any) -> Pid:
        assert _tracer is not None
        attributes = _attributes(self, function=_function_name(fn), owner=str(owner))
        with _tracer.start_as_current_span("spawn", attributes=attributes) as s:
            pid: Pid = original(self, owner, ref, fn, *args, **kwargs)
            s.set_attribute("rs.child", str(pid))
            return pid

    return spawn_for


def _wrap_starter(operation: str) -> Any:
    def wrap(original: Any) -> Any:
        async def method(self: Any, sup: Process, key: str, *rest: Any) -> Any:
            assert _tracer is not None
            attributes = _attributes(sup, starter=str(self.pid), key=str(key))
            with _tracer.start_as_current_span(f"starter.{operation}", attributes=attributes):
                return await original(self, sup, key, *rest)

        return method

    return wrap
