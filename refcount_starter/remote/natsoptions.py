"""The NATS transport's options: one frozen value, from arguments or the environment."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ENVIRONMENT", "NatsOptions"]

#: The largest message (its encoding) a node sends or accepts by default: 64 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

#: The environment variables ``NatsOptions.from_env`` reads, and the option each sets.
ENVIRONMENT: Mapping[str, str] = {
    "RS_NATS_URL": "servers",
    "RS_NATS_TOKEN": "token",
    "RS_NATS_USER": "user",
    "RS_NATS_PASSWORD": "password",
    "RS_NATS_NKEY_SEED": "nkeys_seed",
    "RS_NATS_CREDS": "user_credentials",
    "RS_NATS_SUBJECT_PREFIX": "subject_prefix",
    "RS_NATS_HEARTBEAT_INTERVAL": "heartbeat_interval",
    "RS_NATS_HEARTBEAT_MISSES": "heartbeat_misses",
    "RS_NATS_MAX_MESSAGE_SIZE": "max_message_size",
}

_NUMBERS = {"heartbeat_interval": float, "heartbeat_misses": int, "max_message_size": int}


def _servers(value: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(url.strip() for url in value.split(",") if url.strip())
    return tuple(value)


def _check_servers(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value or not all(isinstance(url, str) and url for url in value):
        raise ValueError(f"servers must be a NATS URL or a list of them, got {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number of seconds > 0, got {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _token(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in " .*>"):
        raise ValueError(f"{attribute.name} must be a subject token such as 'rs', got {value!r}")


def _optional_str(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None, got {value!r}")


@attrs.frozen(kw_only=True)
class NatsOptions:
    """How a node connects to NATS and talks to its peers.

    Example::

        options = NatsOptions.from_env(servers="nats://127.0.0.1:4222")
        async with Node("a", transport=NatsTransport(options)) as node:
            ...

    Args:
        servers: One NATS URL, several separated by commas, or a list of them (the servers
            of a cluster): the client connects to one and, when it goes away, reconnects to
            another (see ADR-0013 for what happens to the sessions).
        randomize_servers: Try the servers in a random order (spreads nodes over the
            cluster); False tries them in the order given.
        token: Token authentication.
        user: User name (with ``password``).
        password: Password.
        nkeys_seed: Path of an nkey seed file (needs the ``nkeys`` package).
        nkeys_seed_str: An nkey seed, as text.
        user_credentials: Path of a ``.creds`` file (JWT + nkey).
        tls: An ``ssl.SSLContext`` (with a client certificate for mutual TLS).
        tls_hostname: The server name to verify, if not the URL's host.
        heartbeat_interval: Seconds between heartbeats to each peer with a live session.
        heartbeat_misses: A peer heard from for ``heartbeat_interval * heartbeat_misses``
            seconds is declared down (its session ends: ``NoConnection``). The defaults (1 s,
            5) bound the detection of a hung peer to about 5 to 6 s; see ADR-0007.
        advisory_subject: Where the server's disconnect advisories are read, or ``None``.
        subject_prefix: The first token of every subject this transport uses.
        resolve_timeout: Seconds a ``whois`` (the first contact with a peer) may take.
        connect_timeout: Seconds one connection attempt may take.
        attach_timeout: Seconds the first connection may take, all attempts together.
        ping_interval: Seconds between the client's pings to its server; with
            ``max_outstanding_pings`` it bounds how soon the node notices that its own
            server hangs (and then ends every session).
        max_outstanding_pings: Unanswered pings before the client reconnects.
        reconnect_time_wait: Seconds between reconnection attempts.
        max_reconnect_attempts: Reconnection attempts per server; -1 for ever.
        pending_msgs_limit: Messages the client may hold unread before it drops some (a
            drop ends the sessions it hits; it is never silent).
        max_message_size: The largest encoded signal this node sends (``send`` raises
            ``MessageTooLarge`` above it) or reassembles from fragments (64 MiB).
        max_reassembly_bytes: The most bytes this node holds in unfinished fragmented
            signals from all its peers together (``None``: eight times ``max_message_size``,
            so that eight peers may send it a message of the largest size at once; not less
            than it). A piece that would exceed it drops the oldest unfinished signal
            and ends its session (ADR-0006).
        max_peers: The most peers this node keeps; when full, the longest idle one is
            forgotten to make room, and a whois from an unknown node is not answered
            when none is idle.
        peer_idle_timeout: Seconds after which a peer without a session, a whois or
            anything waiting is forgotten (``None``: ten times the detection bound).
        connect_options: Further keyword arguments for ``nats.connect``.

    Raises:
        ValueError: A timing parameter is not a positive number, a count not a positive
            int, the prefix not a subject token, or no server is given; or
            ``max_reassembly_bytes`` is less than ``max_message_size``.
    """

    servers: tuple[str, ...] = attrs.field(converter=_servers, validator=_check_servers)
    randomize_servers: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    token: str | None = attrs.field(default=None, validator=_optional_str, repr=False)
    user: str | None = attrs.field(default=None, validator=_optional_str)
    password: str | None = attrs.field(default=None, validator=_optional_str, repr=False)
    nkeys_seed: str | None = attrs.field(default=None, validator=_optional_str)
    nkeys_seed_str: str | None = attrs.field(default=None, validator=_optional_str, repr=False)
    user_credentials: str | None = attrs.field(default=None, validator=_optional_str)
    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = attrs.field(default=None, validator=_optional_str)
    heartbeat_interval: float = attrs.field(default=1.0, validator=_seconds)
    heartbeat_misses: int = attrs.field(default=5, validator=_positive_int)
    advisory_subject: str | None = attrs.field(default="$SYS.ACCOUNT.*.DISCONNECT", validator=_optional_str)
    subject_prefix: str = attrs.field(default="rs", validator=_token)
    resolve_timeout: float = attrs.field(default=2.0, validator=_seconds)
    connect_timeout: float = attrs.field(default=2.0, validator=_seconds)
    attach_timeout: float = attrs.field(default=10.0, validator=_seconds)
    ping_interval: float = attrs.field(default=2.0, validator=_seconds)
    max_outstanding_pings: int = attrs.field(default=2, validator=_positive_int)
    reconnect_time_wait: float = attrs.field(default=0.5, validator=_seconds)
    max_reconnect_attempts: int = -1
    pending_msgs_limit: int = attrs.field(default=512 * 1024, validator=_positive_int)
    max_message_size: int = attrs.field(default=DEFAULT_MAX_MESSAGE_SIZE, validator=_positive_int)
    max_reassembly_bytes: int | None = attrs.field(default=None)
    max_peers: int = attrs.field(default=10_000, validator=_positive_int)
    peer_idle_timeout: float | None = attrs.field(default=None)
    connect_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    @peer_idle_timeout.validator
    def _check_idle(self, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None:
            _seconds(self, attribute, value)

    @max_reassembly_bytes.validator
    def _check_reassembly(self, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is None:
            return
        _positive_int(self, attribute, value)
        if value < self.max_message_size:
            raise ValueError(
                f"max_reassembly_bytes must be at least max_message_size ({self.max_message_size}), "
                f"or no signal of that size could be reassembled; got {value}"
            )

    @property
    def reassembly_limit(self) -> int:
        """The most bytes held in unfinished fragmented signals, from all peers together."""
        if self.max_reassembly_bytes is not None:
            return self.max_reassembly_bytes
        return 8 * self.max_message_size

    @property
    def detection_bound(self) -> float:
        """Seconds after which a silent peer is declared down (interval x misses)."""
        return self.heartbeat_interval * self.heartbeat_misses

    @property
    def idle_timeout(self) -> float:
        """Seconds after which an idle peer is forgotten."""
        if self.peer_idle_timeout is not None:
            return self.peer_idle_timeout
        return 10 * self.detection_bound

    def auth(self) -> dict[str, Any]:
        """The authentication options for ``nats.connect`` that are set."""
        return {
            key: value
            for key, value in (
                ("token", self.token),
                ("user", self.user),
                ("password", self.password),
                ("nkeys_seed", self.nkeys_seed),
                ("nkeys_seed_str", self.nkeys_seed_str),
                ("user_credentials", self.user_credentials),
                ("tls", self.tls),
                ("tls_hostname", self.tls_hostname),
            )
            if value is not None
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> NatsOptions:
        """Options from ``RS_NATS_*`` environment variables (``ENVIRONMENT`` lists them),
        overridden by ``options`` that are not None.

        Args:
            environ: The environment to read (``os.environ`` by default).
            options: Options given explicitly (a command line's); None means unset.

        Raises:
            ValueError: A variable holds a value its option refuses (it is named), or no
                server is given either way.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, option in ENVIRONMENT.items():
            text = env.get(variable)
            if not text:
                continue
            convert = _NUMBERS.get(option)
            try:
                values[option] = convert(text) if convert is not None else text
            except ValueError:
                raise ValueError(f"{variable} must be a number, got {text!r}") from None
        values.update({key: value for key, value in options.items() if value is not None})
        if "servers" not in values:
            raise ValueError("no NATS server given: pass one (--nats URL) or set RS_NATS_URL")
        return cls(**values)
