"""Claiming a node's name on the NATS server, so that no two live nodes share one (ADR-0012).

The node first subscribes to its whois subject, so that it answers for its name (as
*starting*), and then asks for its name itself, once: a node that answers as *running* holds
the name; one that answers as *starting*, or that asks this node meanwhile, started at the
same moment, and the larger incarnation keeps the name. Of two nodes that start together, at
least one hears of the other (each subscribed before it asked), and both decide the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from . import envelope as wire
from .errors import NodeNameTaken

__all__ = ["NameClaim"]

_log = logging.getLogger("refcount_starter.remote.naming")


class NameClaim:
    """One node's claim of its name, from its subscriptions until it runs.

    Args:
        name: The node's name.
        incarnation: The node's incarnation.
    """

    def __init__(self, name: str, incarnation: int) -> None:
        self.name = name
        self.incarnation = incarnation
        # Invariant: true until ``claim`` has decided; only then does the node say hello.
        self.starting = True
        self._rivals: set[int] = set()

    def asked_by(self, incarnation: int) -> bool:
        """A node of the same name in ``incarnation`` asked for it; return whether this node
        is still starting (then that node is a rival, and the answer says *starting*)."""
        if self.starting:
            self._rivals.add(incarnation)
        return self.starting

    async def claim(self, nc: Any, subjects: wire.Subjects, timeout: float) -> None:
        """Ask for the name; return when it is this node's.

        Raises:
            NodeNameTaken: A running node has it, or a rival that started at the same moment
                has the larger incarnation.
        """
        import nats.errors

        answer: tuple[str, int, bool] | None = None
        for attempt in range(2):
            try:
                reply = await nc.request(
                    subjects.whois(self.name, self.name),
                    wire.encode_whois(self.name, self.incarnation),
                    timeout=timeout,
                )
                answer = wire.decode_whois_answer(reply.data)
                break
            except nats.errors.NoRespondersError:
                # Nobody else answers for the name. A lone 503 has been seen for a live
                # subscriber under load: ask once more before believing it.
                await asyncio.sleep(0.01 * (attempt + 1))
            except (nats.errors.TimeoutError, TimeoutError):
                # Subscribed but silent (stopped, hung): as good as gone (ADR-0012).
                _log.warning("a node named %s is subscribed but does not answer; taking the name", self.name)
                break
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                _log.warning("an undecodable answer for the name %s: %s", self.name, exc)
                break
        if answer is not None:
            name, incarnation, running = answer
            if name == self.name and incarnation != self.incarnation:
                if running:
                    raise NodeNameTaken(self.name, incarnation, "it answered as running")
                self._rivals.add(incarnation)
        self.starting = False
        winner = max(self._rivals, default=self.incarnation)
        if winner > self.incarnation:
            raise NodeNameTaken(
                self.name, winner, "it started at the same moment and has the larger incarnation"
            )
