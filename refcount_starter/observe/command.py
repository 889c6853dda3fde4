"""``python -m refcount_starter observe``: one snapshot as JSON, or the live page.

With no ``--nats`` it runs the demo system (``demo_system.py``) on a node of its own, in this
OS process, so that one command shows supervisors sharing starters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..runtime import Node
from .demo_system import demo_system
from .model import NodeSnapshot

if TYPE_CHECKING:
    from .web import SnapshotSource

__all__ = ["run_observe", "snapshot_document"]


def snapshot_document(snapshots: Sequence[NodeSnapshot]) -> dict[str, object]:
    """What ``observe --json`` prints: ``{"nodes": [snapshot, ...]}``."""
    return {"nodes": [snapshot.to_json() for snapshot in snapshots]}


async def _demo_once() -> dict[str, object]:
    async with Node("observe") as node, demo_system(node):
        return snapshot_document([await node.snapshot()])


async def _demo_live(args: argparse.Namespace) -> None:
    async with Node("observe") as node, demo_system(node) as system:

        async def source() -> list[NodeSnapshot]:
            return [await node.snapshot()]

        async with anyio.create_task_group() as tg:
            tg.start_soon(system.churn, args.churn_interval)
            await _serve_page(args, source)
            tg.cancel_scope.cancel()


async def _serve_page(args: argparse.Namespace, source: SnapshotSource) -> None:
    from .web import create_app, serve

    shutdown = anyio.Event()
    app = create_app(source, interval=args.interval, token=args.token, stopping=shutdown)

    def ready(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        suffix = f"?token={args.token}" if args.token else ""
        print(f"observing at http://{host}:{port}/{suffix} (Ctrl-C stops)", file=sys.stderr, flush=True)

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                shutdown.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal)
        await serve(app, host=args.host, port=args.port, token=args.token, shutdown=shutdown, ready=ready)
        tg.cancel_scope.cancel()


async def _cluster(args: argparse.Namespace) -> dict[str, object] | None:
    from ..remote.natstransport import NatsTransport
    from .cluster import ask_nodes

    transport = NatsTransport(args.nats)
    async with Node(f"observer{os.getpid()}", transport=transport) as node, node.process() as me:
        # Asked from this process only: one round at a time (the page's refreshes wait for it).
        lock = anyio.Lock()

        async def documents() -> list[Mapping[str, Any]]:
            async with lock:
                return list(await ask_nodes(me, args.nodes, timeout=args.timeout))

        if args.json:
            return {"nodes": await documents()}
        await _serve_page(args, documents)
        return None


def run_observe(args: argparse.Namespace) -> int:
    """Run the ``observe`` command as the command line asked; return the exit status.

    Args:
        args: ``json``, ``nats``, ``nodes``, ``timeout``, ``host``, ``port``, ``token``,
            ``interval``, ``churn_interval`` and ``backend``, checked by the command line.
    """
    if args.nats is not None:
        try:
            import nats  # noqa: F401
        except ImportError as exc:
            print(
                f"error: --nats needs the nats extra (pip install 'refcount_starter[nats]'): {exc}",
                file=sys.stderr,
            )
            return 2
        if not args.json and not _has_page_extra():
            return 2
        from ..remote.errors import TransportError

        try:
            if args.json:
                print(json.dumps(anyio.run(_cluster, args, backend="asyncio")))
                return 0
            return _serving(args, lambda: anyio.run(_cluster, args, backend="asyncio"))
        except TransportError as exc:
            print(f"error: cannot observe the cluster: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(anyio.run(_demo_once, backend=args.backend)))
        return 0
    if not _has_page_extra():
        return 2
    return _serving(args, lambda: anyio.run(_demo_live, args, backend=args.backend))


def _serving(args: argparse.Namespace, run: Callable[[], object]) -> int:
    """Run the page; an address that cannot be listened on is one line and status 1."""
    try:
        run()
    except (OSError, BaseExceptionGroup) as exc:
        error = _os_error(exc)
        if error is None:
            raise
        print(f"error: cannot serve on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


def _os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` that ``exc`` is, or that a task group wrapped alone in it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def _has_page_extra() -> bool:
    try:
        import hypercorn  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        print(
            f"error: the observe page needs the observe extra (pip install 'refcount_starter[observe]'): {exc}",
            file=sys.stderr,
        )
        return False
    return True
