"""The live page of ``observe``: a Starlette app, served by Hypercorn on asyncio or trio.

Routes: ``/`` the page (``static/observer.html``), ``/api/snapshot`` one snapshot of every
node as JSON, ``/api/events`` the same every ``interval`` seconds as server-sent events.
With a token, every route asks for it (``?token=...`` or ``Authorization: Bearer ...``).

Needs the ``observe`` extra (``pip install 'refcount_starter[observe]'``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .document import MAX_PAGE_PROCESSES, is_loopback, page_document
from .model import NodeSnapshot

__all__ = ["MAX_PAGE_PROCESSES", "SnapshotSource", "create_app", "is_loopback", "page_document", "serve"]

_log = logging.getLogger("refcount_starter.observe.web")

#: Returns one snapshot per node observed: a ``NodeSnapshot``, or its JSON document (from
#: another node; ``{"node": ..., "error": ...}`` for one that did not answer).
SnapshotSource = Callable[[], Awaitable[Sequence[NodeSnapshot | Mapping[str, Any]]]]


def _on_trio() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _page() -> str:
    return resources.files(__package__).joinpath("static/observer.html").read_text("utf-8")


def create_app(
    source: SnapshotSource,
    *,
    interval: float = 1.0,
    token: str | None = None,
    stopping: anyio.Event | None = None,
) -> Starlette:
    """The ASGI app of the page.

    Args:
        source: Takes one snapshot of each node observed.
        interval: Seconds between two snapshots on the event stream.
        token: If given, every request must carry it (``?token=`` or a bearer header).
        stopping: Once set, the event streams end (and their connections close), so that
            the server stops at once instead of waiting for the browsers to go.

    Returns:
        The Starlette app.

    Raises:
        TypeError: ``interval`` is not a number, or ``token`` not a str.
        ValueError: ``interval`` is not positive, or ``token`` is empty.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise TypeError(f"interval must be a number of seconds, got {interval!r}")
    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a str, got {token!r}")
    if token == "":
        raise ValueError("token must not be empty")
    page = _page()

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def refused() -> Response:
        return Response("a token is needed: add ?token=... to the address\n", status_code=401)

    async def encoded() -> str:
        snapshots = await source()
        # Encoding 100,000 processes takes most of a second: off the event loop, so the node
        # keeps running (the snapshot is frozen, so another thread may read it).
        return await anyio.to_thread.run_sync(page_document, snapshots)

    async def index(request: Request) -> Response:
        if not allowed(request):
            return refused()
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def snapshot(request: Request) -> Response:
        if not allowed(request):
            return refused()
        return Response(await encoded(), media_type="application/json")

    async def events(request: Request) -> Response:
        if not allowed(request):
            return refused()

        # Connection: close: once a stream ends, its connection goes too.
        return StreamingResponse(
            _EventStream(encoded, interval, stopping),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "Connection": "close"},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/snapshot", snapshot),
            Route("/api/events", events),
            Route("/healthz", health),
        ]
    )


class _EventStream:
    """The server-sent events of one page: a snapshot now, then one every ``interval``
    seconds until ``stopping`` is set. A plain iterator rather than an async generator, so
    that a stream the server abandons leaves nothing to finalize."""

    def __init__(
        self, encoded: Callable[[], Awaitable[str]], interval: float, stopping: anyio.Event | None
    ) -> None:
        self._encoded = encoded
        self._interval = interval
        self._stopping = stopping
        self._first = True

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> str:
        stopping = self._stopping
        if not self._first:
            if stopping is None:
                await anyio.sleep(self._interval)
            else:
                with anyio.move_on_after(self._interval):
                    await stopping.wait()
        self._first = False
        if stopping is not None and stopping.is_set():
            raise StopAsyncIteration
        return f"event: snapshot\ndata: {await self._encoded()}\n\n"


async def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    shutdown: anyio.Event,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` with Hypercorn until ``shutdown`` is set, on asyncio or trio.

    Args:
        app: The ASGI app (``create_app``).
        host: The address to listen on; one that is not loopback needs a ``token``.
        port: The port (0: any free one; ``ready`` is told which).
        token: The token the app asks for (checked here only for being there).
        shutdown: Set it to stop the server.
        ready: Called with the port once the server listens.

    Raises:
        ValueError: ``host`` is not a loopback address and no ``token`` is given, or the
            port is out of range.
        OSError: The address cannot be listened on (in use, not this machine's).
    """
    if not is_loopback(host) and not token:
        raise ValueError(f"serving on {host!r} makes the page reachable from other machines: give a token")
    if type(port) is not int or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
    from hypercorn.config import Config

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        bound = sock.getsockname()[1]
    except BaseException:
        sock.close()
        raise
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns the socket from here on
    config.accesslog = logging.getLogger("refcount_starter.observe.access")
    config.errorlog = _log
    config.graceful_timeout = 1.0
    if ready is not None:
        ready(bound)
    _log.info("observer serving on http://%s:%d/", host, bound, extra={"port": bound})
    if _on_trio():
        from hypercorn.trio import serve as hypercorn_serve
    else:
        from hypercorn.asyncio import serve as hypercorn_serve  # type: ignore[assignment]

    async def run() -> None:
        try:
            await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait)
        except BaseException as exc:
            if not _spurious_cancel(exc, shutdown):
                raise

    # In a task of its own: Hypercorn's asyncio server can leave its task marked as being
    # cancelled when it stops, which must not reach the caller's task.
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)


def _spurious_cancel(exc: BaseException, shutdown: anyio.Event) -> bool:
    """Whether ``exc`` is the ``CancelledError`` that Hypercorn's asyncio server raises at
    shutdown when a connection outlived its graceful timeout (it reads the result of its own
    cancelled gather), rather than a cancellation of this task."""
    if not shutdown.is_set() or not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and not task.cancelling()
