"""Tracing in a node process of the tests (``--import tests.remote.traced_node``): its spans
go to an in-memory exporter, and the remote-table function ``test.spans`` answers calls with
them."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refcount_starter import tracing
from refcount_starter.remote.closures import remotable
from refcount_starter.runtime import Call, Kill, Process

from .spans import as_value

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
# Exported as each span ends, in the task that ends it: a span ended before a reply left is
# among the answer to any later call.
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
tracing.instrument(_provider)


@remotable(name="test.spans")
async def spans(p: Process) -> None:
    """Answer each call with the spans of this OS process finished so far."""
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, [as_value(span) for span in EXPORTER.get_finished_spans()])


@remotable(name="test.kill")
async def kill(p: Process) -> None:
    """Answer each call, a pid, by killing that pid first."""
    async for message in p.messages():
        if isinstance(message, Call):
            p.exit(message.request, Kill())
            p.reply(message, None)
