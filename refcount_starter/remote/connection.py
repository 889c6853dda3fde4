"""Connecting a node to NATS: one nats-py client, its options, and failures as typed errors.

``connect`` returns a connected client or raises ``NatsAuthenticationError`` (the server
refused the credentials) or ``NatsConnectError`` (no server answered within
``attach_timeout``), with the server URLs stripped of any credentials. See ADR-0006.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import NatsAuthenticationError, NatsConnectError
from .natsoptions import NatsOptions

__all__ = ["Callbacks", "close_quietly", "connect", "is_auth_error", "safe_servers", "suppress_all"]

#: The connection's callbacks: (error, disconnected, reconnected, closed).
Callbacks = tuple[
    Callable[[Exception], Awaitable[None]],
    Callable[[], Awaitable[None]],
    Callable[[], Awaitable[None]],
    Callable[[], Awaitable[None]],
]


async def connect(options: NatsOptions, name: str, incarnation: int, callbacks: Callbacks) -> Any:
    """A nats-py client connected for the node ``name`` in ``incarnation``.

    The connection is named ``<name>/<incarnation>`` (the disconnect advisories say which
    incarnation left, ADR-0007), never receives what it publishes itself, and receives its
    replies on ``_INBOX.<name>.>`` (which a NATS user per node may be limited to).

    Raises:
        NatsAuthenticationError: The server refused the credentials.
        NatsConnectError: No server could be reached within ``attach_timeout``.
    """
    from nats.aio.client import Client

    on_error, on_disconnected, on_reconnected, on_closed = callbacks
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[Any] = loop.create_future()
    last_error: list[BaseException] = []
    connected = False

    async def error_cb(exc: Exception) -> None:
        last_error[:] = [exc]
        if not connected and is_auth_error(exc):
            if not refused.done():
                refused.set_result(exc)
            return
        await on_error(exc)

    # A dict: nats-py annotates its timeouts as int, and takes floats.
    settings: dict[str, Any] = {
        "servers": list(options.servers),
        "name": f"{name}/{incarnation}",
        "no_echo": True,
        "connect_timeout": options.connect_timeout,
        "ping_interval": options.ping_interval,
        "max_outstanding_pings": options.max_outstanding_pings,
        "reconnect_time_wait": options.reconnect_time_wait,
        "max_reconnect_attempts": options.max_reconnect_attempts,
        "allow_reconnect": True,
        "dont_randomize": not options.randomize_servers,
        "inbox_prefix": f"_INBOX.{name}",
        "error_cb": error_cb,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "closed_cb": on_closed,
        **options.auth(),
        **options.connect_options,
    }
    nc = Client()
    connecting: asyncio.Future[Any] = loop.create_task(nc.connect(**settings))
    servers = safe_servers(options.servers)
    try:
        done, _ = await asyncio.wait(
            {connecting, refused}, timeout=options.attach_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if connecting in done:
            connecting.result()
        else:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            if refused in done:
                raise NatsAuthenticationError(servers, str(refused.result()))
            cause = last_error[0] if last_error else "no answer"
            raise NatsConnectError(servers, f"{cause} (gave up after {options.attach_timeout} s)")
    except BaseException as exc:
        await close_quietly(nc)
        if isinstance(exc, NatsConnectError) or not isinstance(exc, Exception):
            raise
        if is_auth_error(exc):
            raise NatsAuthenticationError(servers, str(exc)) from exc
        raise NatsConnectError(servers, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if not refused.done():
            refused.cancel()
    connected = True
    return nc


async def close_quietly(nc: Any) -> None:
    """Close the client, whatever state it is in."""
    with suppress_all():
        await asyncio.wait_for(nc.close(), timeout=5.0)


def safe_servers(servers: tuple[str, ...] | list[str]) -> list[str]:
    """Server URLs without any credentials they may carry."""
    safe = []
    for url in servers:
        scheme, sep, rest = url.partition("://")
        safe.append(f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url.rpartition("@")[2])
    return safe


def is_auth_error(exc: BaseException) -> bool:
    """Whether nats-py's error says the server refused the credentials."""
    text = str(exc).lower()
    return (
        "authorization violation" in text
        or "authentication" in text
        or type(exc).__name__ in ("AuthorizationError", "InvalidUserCredentialsError")
    )


class suppress_all:
    """Swallow any exception (not cancellation) in best-effort clean-up."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, Exception)
