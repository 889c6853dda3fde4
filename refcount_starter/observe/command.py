"""``python -m refcount_starter observe``: one snapshot as JSON, or the live page.

With no ``--nats`` it runs the demo system (``demo_system.py``) on a node of its own, in this
OS process, so that one command shows supervisors sharing starters.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from ..runtime import Node
from .demo_system import demo_system
from .model import NodeSnapshot

__all__ = ["run_observe", "snapshot_document"]

_log = logging.getLogger("refcount_starter.observe.command")


def snapshot_document(snapshots: Sequence[NodeSnapshot]) -> dict[str, object]:
    """What ``observe --json`` prints: ``{"nodes": [snapshot, ...]}``."""
    return {"nodes": [snapshot.to_json() for snapshot in snapshots]}


async def _demo_once() -> dict[str, object]:
    async with Node("observe") as node, demo_system(node):
        return snapshot_document([await node.snapshot()])


async def _demo_live(args: argparse.Namespace) -> None:
    from .web import create_app, serve

    async with Node("observe") as node, demo_system(node) as system:

        async def source() -> list[NodeSnapshot]:
            return [await node.snapshot()]

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
            tg.start_soon(system.churn, args.churn_interval)
            tg.start_soon(stop_on_signal)
            try:
                await serve(
                    app, host=args.host, port=args.port, token=args.token, shutdown=shutdown, ready=ready
                )
            finally:
                tg.cancel_scope.cancel()


def run_observe(args: argparse.Namespace) -> int:
    """Run the ``observe`` command as the command line asked; return the exit status.

    Args:
        args: ``json``, ``nats``, ``host``, ``port``, ``token``, ``interval``,
            ``churn_interval`` and ``backend``, checked by the command line.
    """
    if args.json:
        print(json.dumps(anyio.run(_demo_once, backend=args.backend)))
        return 0
    try:
        import hypercorn  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        print(
            f"error: the observe page needs the observe extra (pip install 'refcount_starter[observe]'): {exc}",
            file=sys.stderr,
        )
        return 2
    anyio.run(_demo_live, args, backend=args.backend)
    return 0
