"""Spans as plain values that cross OS processes: a traced node process answers with its
own (``traced_node``), and the test puts them together with those of its own process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refcount_starter import tracing

#: (name, trace id, span id, parent span id or "" for a root, attributes), ids in hex.
Span = tuple[str, str, str, str, dict[str, str]]


def as_value(span: ReadableSpan) -> Span:
    """A finished span as a value the codec carries."""
    parent = span.parent
    return (
        span.name,
        format(span.context.trace_id, "032x"),
        format(span.context.span_id, "016x"),
        "" if parent is None else format(parent.span_id, "016x"),
        {name: str(value) for name, value in (span.attributes or {}).items()},
    )


def chain(span: Span, spans: Sequence[Span]) -> list[Span]:
    """``span`` and its ancestors up to its trace's root, looked up among ``spans``."""
    found = [span]
    while found[-1][3]:
        (parent,) = [s for s in spans if s[2] == found[-1][3] and s[1] == found[-1][1]]
        found.append(parent)
    return found


@contextlib.contextmanager
def spans_in_memory() -> Iterator[InMemorySpanExporter]:
    """This OS process's spans, into memory, while the block runs (instrumented)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()
