"""Every interleaving of a small configuration, over the real ``step`` (an explicit BFS).

Two supervisors, two child keys and the owner, with a fault budget of one of each kind
(a duplicate, a drop that ends a session, a crash, a retried request, a forged start). Every
state reached is checked for S1 and S2; every state where nothing can happen any more is
checked for L1 and for calls left unanswered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import attrs

from . import starter_model as m

SLOTS = ((1, "a"), (1, "b"), (2, "a"))


@attrs.frozen
class Outcome:
    """What the search found: the states explored, and the first violation with its trace."""

    states: int
    terminal: int
    violation: str | None
    trace: tuple[str, ...]


def explore(
    impl: m.Impl,
    slots: tuple[tuple[int, str], ...] = SLOTS,
    max_states: int = 2_000_000,
    count_children: bool | None = None,
    **budget: int,
) -> Outcome:
    """Breadth-first search of every interleaving; stop at the first violation."""
    start = m.new_world(impl, holders=2, slots=slots, count_children=count_children, **budget)
    parent: dict[Hashable, tuple[Hashable, str] | None] = {m.key(impl, start): None}
    queue = deque([start])
    terminal = 0

    def trace(k: Hashable) -> tuple[str, ...]:
        steps = []
        while (link := parent[k]) is not None:
            k, label = link
            steps.append(label)
        return tuple(reversed(steps))

    while queue:
        world = queue.popleft()
        here = m.key(impl, world)
        try:
            m.check_safety(impl, world)
            nexts = list(m.successors(impl, world))
            if not nexts:
                terminal += 1
                m.check_quiescent(world)
        except AssertionError as exc:
            return Outcome(len(parent), terminal, str(exc), trace(here))
        for label, nxt in nexts:
            k = m.key(impl, nxt)
            if k not in parent:
                parent[k] = (here, label)
                queue.append(nxt)
        assert len(parent) <= max_states, "the state space is larger than expected"
    return Outcome(len(parent), terminal, None, ())


#: Two supervisors, two keys; one duplicate, one lost session, one crash, one child start.
TWO_KEYS = ((1, "a"), (2, "b"))
FAULTS = {"dups": 1, "drops": 1, "crashes": 1, "starts": 1}
#: Two supervisors sharing one key.
ONE_KEY = ((1, "a"), (2, "a"))


def report(outcome: Outcome) -> str:
    return f"{outcome.violation}\ntrace: {' ; '.join(outcome.trace)}"


def test_every_interleaving_with_faults_is_safe_and_leaks_nothing() -> None:
    """No interleaving of two holders, two keys, a duplicate, a drop and a crash breaks S1, S2 or L1."""
    outcome = explore(m.RealProtocol(), slots=TWO_KEYS, max_states=200_000, **FAULTS)
    assert outcome.violation is None, report(outcome)
    assert outcome.states > 10_000 and outcome.terminal > 0


def test_every_interleaving_of_holders_sharing_a_key_is_safe() -> None:
    """Two holders of one key, with a duplicate, a retried request and a crash, keep S1, S2 and L1."""
    outcome = explore(m.RealProtocol(), slots=ONE_KEY, max_states=200_000, dups=1, crashes=1, retries=1)
    assert outcome.violation is None, report(outcome)


def test_every_interleaving_with_a_re_add_is_safe() -> None:
    """Deleting and re-adding a key (a new seq) with a lost session and a retry keeps S1, S2 and L1."""
    outcome = explore(m.RealProtocol(), slots=ONE_KEY, max_states=200_000, drops=1, readds=1, retries=1)
    assert outcome.violation is None, report(outcome)


def test_a_naive_counter_fails_the_exhaustive_search() -> None:
    """The same search finds a violating trace for a bare integer count."""
    outcome = explore(m.NaiveCounter(), slots=TWO_KEYS, **FAULTS)
    assert outcome.violation is not None
    assert outcome.violation.startswith(("S1", "L1")), report(outcome)
    assert outcome.trace


def test_a_holder_with_two_keys_under_one_mark_is_safe() -> None:
    """One holder with two keys (one mark for both) and a second holder, with a duplicate, keep S1, S2 and L1."""
    outcome = explore(m.RealProtocol(), slots=SLOTS, max_states=200_000, dups=1)
    assert outcome.violation is None, report(outcome)


def test_every_interleaving_of_starts_that_are_ignored_or_fail_is_safe() -> None:
    """Children whose start is acknowledged, ignored or fails (the spec kept, or dropped and
    released), with a re-add, a crash and a lost session, keep S1, S2 and L1, and a holder
    that keeps an ignored or failed spec can start it again."""
    outcome = explore(
        m.RealProtocol(), slots=TWO_KEYS, max_states=400_000, starts=2, readds=1, crashes=1, drops=1
    )
    assert outcome.violation is None, report(outcome)
    assert outcome.states > 10_000


def test_the_search_reaches_every_answer_of_a_child() -> None:
    """The search explores each answer a child can give (so the test above is not vacuous)."""
    impl = m.RealProtocol()
    world: m.World | None = m.new_world(impl, holders=1, slots=((1, "a"),), starts=1)
    for step in ("add", "deliver", "deliver", "start", "deliver", "deliver"):
        assert world is not None
        if step == "deliver":
            world = m.deliver(impl, world, 0)
        else:
            world = m.add(world, 0) if step == "add" else m.start(world, 0)
    assert world is not None and world.slots[0].phase == m.ACKING
    labels = {label for label, _ in m.successors(impl, world)}
    assert {f"H1/a child {answer}" for answer in m.CHILD_ANSWERS} <= labels
    dropped = m.child_answers(world, 0, "spec dropped")
    assert dropped is not None and dropped.net == (("rel", 1, 0, world.slots[0].seq),)


def test_forged_starts_are_refused() -> None:
    """A start for a seq the requester never acquired is refused in every interleaving, crashes included."""
    outcome = explore(m.RealProtocol(), slots=TWO_KEYS, max_states=200_000, forgeries=1, crashes=1)
    assert outcome.violation is None, report(outcome)


def test_the_search_catches_an_acquire_granted_at_or_below_the_mark() -> None:
    """Mutation check: a starter that grants a late duplicate acquire (seq <= mark) leaks, and the search says so."""
    outcome = explore(m.IgnoresMarks(), slots=TWO_KEYS, dups=1)
    assert outcome.violation is not None and outcome.violation.startswith("L1"), report(outcome)
    assert any(label.startswith("DUPLICATE acq") for label in outcome.trace)


def test_the_search_catches_a_starter_that_serves_non_holders() -> None:
    """Mutation check: a starter that serves any start request is caught by a forged start."""
    outcome = explore(m.AnyoneStarts(), slots=TWO_KEYS, forgeries=1)
    assert outcome.violation is not None and outcome.violation.startswith("forged start"), report(outcome)


#: A partition: one supervisor or both cut off from the starter, then healed (ADR-0013).
PARTITION = {"partitions": 1, "starts": 1, "readds": 1}


def test_every_interleaving_with_a_partition_and_a_heal_is_safe() -> None:
    """Two holders of two keys, a partition (either one or both cut off) and its heal, a
    restart and a re-add after it: no premature stop, no leak, never two live children for
    one (holder, key), none left."""
    outcome = explore(m.RealProtocol(), slots=TWO_KEYS, max_states=300_000, **PARTITION)
    assert outcome.violation is None, report(outcome)
    assert outcome.states > 1_000 and outcome.terminal > 0


def test_every_interleaving_of_a_partition_with_a_shared_key_and_a_crash_is_safe() -> None:
    """Two holders sharing a key, a partition and its heal, a restart, a re-add and a crash
    keep S1, S2, L1, C1 and L2."""
    outcome = explore(m.RealProtocol(), slots=ONE_KEY, max_states=300_000, crashes=1, **PARTITION)
    assert outcome.violation is None, report(outcome)


def test_the_partition_search_catches_a_starter_that_keeps_the_cut_off_holders() -> None:
    """Mutation check: a starter that keeps the references of holders cut off by a partition
    leaks once they re-acquire and let go after the heal, and the search says so."""
    outcome = explore(m.IgnoresDown(), slots=TWO_KEYS, **PARTITION)
    assert outcome.violation is not None and outcome.violation.startswith("L1"), report(outcome)
    assert any(label.startswith("PARTITION") for label in outcome.trace)


def test_the_child_count_catches_a_start_request_delivered_twice() -> None:
    """The C1 check has teeth: a start request delivered twice (which the session layer never
    does) starts a second child for one (holder, key), and the search says so."""
    outcome = explore(m.RealProtocol(), slots=TWO_KEYS, count_children=True, dups=1, starts=1)
    assert outcome.violation is not None and outcome.violation.startswith("C1"), report(outcome)
    assert any(label.startswith("DUPLICATE start") for label in outcome.trace)
