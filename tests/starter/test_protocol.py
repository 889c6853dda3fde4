"""The starter's pure reference protocol, one event at a time."""

from __future__ import annotations

import time

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from refcount_starter.runtime.pid import Pid, Ref
from refcount_starter.runtime.reasons import Normal, Shutdown
from refcount_starter.starter.protocol import (
    Acquire,
    Demonitor,
    Event,
    Halt,
    HolderDown,
    Monitor,
    OwnerRelease,
    Refusal,
    Release,
    ReplyAcquired,
    ReplyRefused,
    ReplyReleased,
    SpawnChild,
    StarterState,
    StartRequest,
    Stop,
    StrayExit,
    acquire_and_start,
    initial,
    step,
)

OWNER = Pid("n", 1, 1)
SUP_A = Pid("n", 1, 2)
SUP_B = Pid("n", 1, 3)
REF = Ref("n", 1, 99)


def run(state: StarterState, *events: Event) -> tuple[StarterState, list[object]]:
    """Apply events in order, checking the invariants after each; return all commands."""
    commands: list[object] = []
    for event in events:
        state, out = step(state, event)
        state.check_invariants()
        commands.extend(out)
    return state, commands


def fresh() -> StarterState:
    state, commands = initial(OWNER)
    assert commands == (Monitor(OWNER),)
    state.check_invariants()
    return state


def held_by_a() -> StarterState:
    state, _ = run(fresh(), Acquire(SUP_A, "db", 1))
    return state


def test_initial_state_is_held_by_the_owner() -> None:
    """A new starter is held by its owner alone and watches it."""
    state = fresh()
    assert state.holders == {OWNER}
    assert state.owner_holds and not state.refs and not state.stopped


def test_acquire_adds_a_reference_and_monitors_the_holder() -> None:
    """The first acquire of a holder adds its reference, monitors it, and answers."""
    state, commands = step(fresh(), Acquire(SUP_A, "db", 1))
    assert state.refs == {(SUP_A, "db"): 1}
    assert commands == (Monitor(SUP_A), ReplyAcquired(SUP_A, "db", 1))


def test_second_key_of_the_same_holder_does_not_monitor_again() -> None:
    """A holder with two keys is monitored once."""
    state, commands = run(held_by_a(), Acquire(SUP_A, "cache", 1))
    assert commands == [ReplyAcquired(SUP_A, "cache", 1)]
    assert set(state.refs) == {(SUP_A, "db"), (SUP_A, "cache")}


def test_duplicate_acquire_is_answered_and_changes_nothing() -> None:
    """Acquiring the same reference twice answers twice and holds it once."""
    state = held_by_a()
    again, commands = step(state, Acquire(SUP_A, "db", 1))
    assert again == state
    assert commands == (ReplyAcquired(SUP_A, "db", 1),)


def test_release_drops_the_reference_and_keeps_the_holder_watched_with_its_mark() -> None:
    """Releasing a holder's last reference drops it, raises its mark, and keeps its monitor."""
    state, commands = run(held_by_a(), Release(SUP_A, "db", 1))
    assert not state.refs and not state.stopped
    assert commands == []
    assert state.released_hw == {SUP_A: 1} and state.monitored == {OWNER, SUP_A}


def test_a_mark_refuses_every_earlier_seq_of_its_holder_for_any_key() -> None:
    """After a release of seq 5, any acquire of that holder at or below 5 is refused, whatever its key."""
    state, _ = run(fresh(), Acquire(SUP_A, "db", 5), Release(SUP_A, "db", 5))
    for key, seq in (("db", 5), ("db", 4), ("cache", 3), ("cache", 5)):
        again, commands = step(state, Acquire(SUP_A, key, seq))
        assert again == state and commands == (ReplyRefused(Refusal.RELEASED),)
    state, commands = run(state, Acquire(SUP_A, "cache", 6))
    assert commands == [ReplyAcquired(SUP_A, "cache", 6)]


def test_a_mark_does_not_touch_a_reference_still_held_below_it() -> None:
    """A holder with two keys keeps its older reference, and its duplicates, when it releases a newer one."""
    state, _ = run(fresh(), Acquire(SUP_A, "db", 1), Acquire(SUP_A, "cache", 2), Release(SUP_A, "cache", 2))
    assert state.refs == {(SUP_A, "db"): 1} and state.released_hw == {SUP_A: 2}
    again, commands = step(state, Acquire(SUP_A, "db", 1))
    assert again == state and commands == (ReplyAcquired(SUP_A, "db", 1),)
    _, commands = step(state, StartRequest(SUP_A, "db", 1, REF))
    assert commands == (SpawnChild(SUP_A, "db", 1, REF),)


def test_a_release_that_matches_nothing_leaves_no_trace() -> None:
    """A junk release from any process (not even watched) changes nothing but the spurious counter."""
    state = held_by_a()
    after, commands = run(
        state, Release(SUP_B, "junk", 1), Release(SUP_A, "junk", 9), Release(SUP_A, "db", 2)
    )
    assert commands == []
    assert after == attrs.evolve(state, spurious_releases=3)


def test_releasing_twice_changes_nothing_the_second_time() -> None:
    """Releasing a reference twice changes nothing the second time, and counts it spurious."""
    once, _ = run(held_by_a(), Release(SUP_A, "db", 1))
    twice, commands = step(once, Release(SUP_A, "db", 1))
    assert commands == ()
    assert twice.refs == once.refs and twice.holders == once.holders
    assert twice.spurious_releases == once.spurious_releases + 1


def test_release_with_another_seq_is_spurious() -> None:
    """A release carrying another seq than the one held changes no reference."""
    state, commands = run(held_by_a(), Release(SUP_A, "db", 7), Release(SUP_B, "db", 1))
    assert state.refs == {(SUP_A, "db"): 1}
    assert state.spurious_releases == 2 and commands == []


def test_a_release_of_one_holder_never_drops_another_holders_reference() -> None:
    """Releases are per holder: B's release cannot drop A's reference for the same key."""
    state, _ = run(held_by_a(), Acquire(SUP_B, "db", 1), Release(SUP_B, "db", 1), Release(SUP_B, "db", 1))
    assert state.refs == {(SUP_A, "db"): 1}


def test_late_acquire_after_release_is_refused() -> None:
    """A delayed duplicate of an acquire whose reference was released cannot resurrect it."""
    state, commands = run(held_by_a(), Release(SUP_A, "db", 1), Acquire(SUP_A, "db", 1))
    assert commands[-1] == ReplyRefused(Refusal.RELEASED)
    assert (SUP_A, "db") not in state.refs


def test_re_adding_a_key_with_a_newer_seq_is_accepted() -> None:
    """Delete then re-add of the same key (a new seq) holds the new reference."""
    state, commands = run(held_by_a(), Release(SUP_A, "db", 1), Acquire(SUP_A, "db", 2))
    assert state.refs == {(SUP_A, "db"): 2}
    assert commands[-1] == ReplyAcquired(SUP_A, "db", 2)


def test_newer_acquire_before_older_release_supersedes_it() -> None:
    """A re-add whose older release is still travelling replaces it; the late release is spurious."""
    state, _ = run(held_by_a(), Acquire(SUP_A, "db", 2), Release(SUP_A, "db", 1))
    assert state.refs == {(SUP_A, "db"): 2}
    assert state.spurious_releases == 1
    _, commands = step(state, Acquire(SUP_A, "db", 1))
    assert commands == (ReplyRefused(Refusal.SUPERSEDED),)


def test_older_acquire_after_newer_is_refused() -> None:
    """An acquire with an older seq than the one held is refused and changes nothing."""
    state, _ = run(fresh(), Acquire(SUP_A, "db", 5))
    again, commands = step(state, Acquire(SUP_A, "db", 3))
    assert again == state and commands == (ReplyRefused(Refusal.SUPERSEDED),)


def test_holder_down_drops_all_its_references_and_its_mark() -> None:
    """A holder's Down drops every reference it held and its mark, and remembers nothing of it."""
    state, commands = run(
        held_by_a(),
        Acquire(SUP_A, "cache", 2),
        Release(SUP_A, "cache", 2),
        Acquire(SUP_B, "db", 1),
        HolderDown(SUP_A),
    )
    assert state.refs == {(SUP_B, "db"): 1}
    assert SUP_A not in state.monitored and SUP_A not in state.released_hw
    assert Demonitor(SUP_A) not in commands


def test_late_acquire_from_a_dead_holder_is_dropped_by_its_own_down() -> None:
    """An acquire that arrives after its holder's Down is granted and watched; the Down that
    monitoring a dead pid delivers at once drops it again (no record of dead holders needed)."""
    state, commands = run(held_by_a(), HolderDown(SUP_A), Acquire(SUP_A, "cache", 2))
    assert commands == [Monitor(SUP_A), ReplyAcquired(SUP_A, "cache", 2)]
    state, _ = run(state, HolderDown(SUP_A))
    assert not state.refs and state.monitored == {OWNER} and not state.released_hw


def test_release_from_a_dead_holder_is_spurious() -> None:
    """A release that arrives after its holder's Down changes nothing and leaves no mark."""
    state, _ = run(held_by_a(), HolderDown(SUP_A), Release(SUP_A, "db", 1))
    assert state.spurious_releases == 1 and not state.refs and not state.released_hw


def test_a_holder_seen_down_falsely_can_acquire_again() -> None:
    """A live supervisor whose Down was false (a partition) is not banned: a new acquire is granted."""
    state, _ = run(held_by_a(), Acquire(SUP_B, "db", 1), HolderDown(SUP_A))
    _, commands = run(state, StartRequest(SUP_A, "db", 1, REF))
    assert commands == [ReplyRefused(Refusal.NOT_HOLDER)]
    state, commands = run(
        state, Release(SUP_A, "db", 1), Acquire(SUP_A, "db", 2), StartRequest(SUP_A, "db", 2, REF)
    )
    assert commands == [Monitor(SUP_A), ReplyAcquired(SUP_A, "db", 2), SpawnChild(SUP_A, "db", 2, REF)]


def test_owner_release_keeps_the_starter_while_a_supervisor_holds_it() -> None:
    """The owner letting go leaves a starter that a supervisor still holds running."""
    state, commands = run(held_by_a(), OwnerRelease(OWNER))
    assert commands == [ReplyReleased(), Demonitor(OWNER)]
    assert not state.stopped and state.holders == {SUP_A}


def test_last_release_stops_the_starter_normally() -> None:
    """When the reference list becomes empty the starter stops with Normal."""
    state, commands = run(held_by_a(), OwnerRelease(OWNER), Release(SUP_A, "db", 1))
    assert state.stopped
    # No Demonitor before the Stop: the starter's exit drops every monitor it holds.
    assert commands[-1:] == [Stop(Normal())]
    assert Demonitor(SUP_A) not in commands


def test_owner_release_alone_stops_an_unused_starter() -> None:
    """A starter nobody acquired stops when its owner releases it, after answering."""
    state, commands = step(fresh(), OwnerRelease(OWNER))
    assert commands == (ReplyReleased(), Stop(Normal()))
    assert state.stopped


def test_owner_release_is_idempotent() -> None:
    """A second owner release is answered and changes no reference."""
    state, commands = run(held_by_a(), OwnerRelease(OWNER), OwnerRelease(OWNER))
    assert commands[-1] == ReplyReleased()
    assert state.holders == {SUP_A} and state.spurious_releases == 1


def test_only_the_owner_can_release_the_owner_reference() -> None:
    """An owner release from another process is refused."""
    state, commands = step(fresh(), OwnerRelease(SUP_A))
    assert commands == (ReplyRefused(Refusal.NOT_OWNER),)
    assert state.owner_holds


def test_owner_death_releases_its_reference() -> None:
    """The owner's Down releases the owner's reference, and stops an unused starter."""
    state, commands = step(fresh(), HolderDown(OWNER))
    assert state.stopped and not state.owner_holds
    assert commands == (Stop(Normal()),)


def test_owner_that_is_also_a_holder_stays_monitored_after_release() -> None:
    """An owner that also holds a supervisor reference keeps its monitor after releasing."""
    state, commands = run(fresh(), Acquire(OWNER, "db", 1), OwnerRelease(OWNER))
    assert commands == [ReplyAcquired(OWNER, "db", 1), ReplyReleased()]
    assert state.monitored == {OWNER}


def test_start_request_from_a_holder_spawns_a_child() -> None:
    """A holder's start request spawns its child and counts it."""
    state, commands = run(held_by_a(), StartRequest(SUP_A, "db", 1, REF))
    assert commands == [SpawnChild(SUP_A, "db", 1, REF)]
    assert state.children_started == 1


def test_start_request_from_a_non_holder_is_refused() -> None:
    """A start request from a process that holds no reference for that key is refused."""
    state, commands = run(held_by_a(), StartRequest(SUP_B, "db", 1, REF), StartRequest(SUP_A, "db", 2, REF))
    assert commands == [ReplyRefused(Refusal.NOT_HOLDER)] * 2
    assert state.children_started == 0


def test_start_request_after_holder_down_is_refused() -> None:
    """A holder seen down (a false Down, say) cannot start the child of a dropped reference."""
    _, commands = run(held_by_a(), HolderDown(SUP_A), StartRequest(SUP_A, "db", 1, REF))
    assert commands[-1] == ReplyRefused(Refusal.NOT_HOLDER)


def test_a_stopped_starter_refuses_everything() -> None:
    """After stopping, requests are refused and signals change nothing."""
    stopped, _ = step(fresh(), OwnerRelease(OWNER))
    state, commands = run(
        stopped,
        Acquire(SUP_A, "db", 1),
        StartRequest(SUP_A, "db", 1, REF),
        Release(SUP_A, "db", 1),
        HolderDown(SUP_A),
        StrayExit(SUP_A, Shutdown()),
    )
    assert state == stopped
    assert commands == [ReplyRefused(Refusal.STOPPED)] * 2


def test_halt_stops_at_once_with_its_reason() -> None:
    """A node stopping halts the starter whatever it holds."""
    state, commands = step(held_by_a(), Halt(Shutdown("node stopping")))
    assert state.stopped and commands == (Stop(Shutdown("node stopping")),)


def test_stray_exit_counts_as_spurious_and_changes_nothing() -> None:
    """An exit signal that is not a release changes no reference."""
    state, commands = run(held_by_a(), StrayExit(SUP_B, Shutdown()))
    assert commands == [] and state.refs == {(SUP_A, "db"): 1} and state.spurious_releases == 1


def test_statistics_reflect_the_state() -> None:
    """Statistics list the holders, references and counters."""
    state, _ = run(held_by_a(), StartRequest(SUP_A, "db", 1, REF), Release(SUP_B, "x", 1))
    stats = state.statistics()
    assert stats.holders == {OWNER, SUP_A}
    assert stats.references == {(SUP_A, "db"): 1}
    assert (stats.spurious_releases, stats.children_started, stats.stopped) == (1, 1, False)
    assert stats.marks == {} and stats.monitored == {OWNER, SUP_A}
    stats = run(state, Release(SUP_A, "db", 1))[0].statistics()
    assert stats.marks == {SUP_A: 1} and stats.monitored == {OWNER, SUP_A}


def test_evolve_keeps_every_field_of_the_state() -> None:
    """The protocol's spelled-out evolve matches attrs.evolve field by field (none dropped)."""
    import attrs

    from refcount_starter.starter.protocol import StarterState, _evolve

    state, _ = run(held_by_a(), Release(SUP_A, "db", 7))
    assert _evolve(state) == state
    for field in attrs.fields(StarterState):
        marker = object()
        assert _evolve(state, **{field.name: marker}) == attrs.evolve(state, **{field.name: marker})


CYCLES = 20_000


def test_regression_cycles_with_a_fresh_key_leave_the_state_bounded() -> None:
    """Regression (a tombstone per released key): 20,000 add/delete cycles of one supervisor,
    a fresh key each time, leave one mark, and each cycle stays cheap."""
    state = fresh()
    began = time.perf_counter()
    for seq in range(1, CYCLES + 1):
        state, _ = step(state, Acquire(SUP_A, f"k{seq}", seq))
        state, _ = step(state, StartRequest(SUP_A, f"k{seq}", seq, REF))
        state, _ = step(state, Release(SUP_A, f"k{seq}", seq))
    elapsed = time.perf_counter() - began
    state.check_invariants()
    assert not state.refs and state.released_hw == {SUP_A: CYCLES} and state.monitored == {OWNER, SUP_A}
    assert state.size() == 3
    assert elapsed < 5.0, f"{CYCLES} cycles took {elapsed:.2f} s"


def test_regression_cycles_with_a_fresh_supervisor_leave_the_state_bounded() -> None:
    """Regression (a tombstone per holder that ever exited, and per junk release): 20,000
    supervisors that acquire, release, send a junk release and stop leave nothing behind."""
    state = fresh()
    began = time.perf_counter()
    for n in range(1, CYCLES + 1):
        sup = Pid("n", 1, 1000 + n)
        state, _ = step(state, Acquire(sup, "db", n))
        state, _ = step(state, Release(sup, "db", n))
        state, _ = step(state, Release(Pid("n", 1, 10_000_000 + n), "junk", n))  # not watched
        state, _ = step(state, HolderDown(sup))  # supervisors never release on exit
    elapsed = time.perf_counter() - began
    state.check_invariants()
    assert not state.refs and not state.released_hw and state.monitored == {OWNER}
    assert state.size() == 1 and state.spurious_releases == CYCLES
    assert elapsed < 5.0, f"{CYCLES} cycles took {elapsed:.2f} s"


_holders = st.sampled_from([OWNER, SUP_A, SUP_B])
_keys = st.sampled_from(["db", "cache"])
_seqs = st.integers(min_value=0, max_value=6)
_events = st.one_of(
    st.builds(Acquire, _holders, _keys, _seqs),
    st.builds(Release, _holders, _keys, _seqs),
    st.builds(StartRequest, _holders, _keys, _seqs, st.just(REF)),
    st.builds(HolderDown, _holders),
    st.builds(OwnerRelease, _holders),
    st.builds(StrayExit, _holders, st.just(Shutdown())),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=12), _holders, _keys, _seqs)
def test_acquire_and_start_is_acquire_then_start(
    history: list[Event], holder: Pid, key: str, seq: int
) -> None:
    """From any reachable state, the one-step ``acquire_and_start`` gives the state and the
    commands of ``Acquire`` then (if granted) ``StartRequest``, less the acquire's reply."""
    state = fresh()
    for event in history:
        state, _ = step(state, event)
    one, commands = acquire_and_start(state, holder, key, seq, REF)
    two, acquired = step(state, Acquire(holder, key, seq))
    expected = list(acquired)
    if acquired and type(acquired[-1]) is ReplyAcquired:
        two, started = step(two, StartRequest(holder, key, seq, REF))
        expected = [*acquired[:-1], *started]
    assert one == two and list(commands) == expected
    one.check_invariants()
