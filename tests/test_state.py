"""Tests of prober.state: the state table, the streak machine, incidents, restore, reconfigure, properties."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict
from prober.state import CheckTracker, Event, Policy, check_state, rebuild_incidents

T0 = datetime(2022, 12, 28, 12, 0, tzinfo=UTC)
REGIONS = {"us-east": "US", "tokyo": "JP", "london": "UK"}
LETTERS = {"u": Verdict.UP, "g": Verdict.DEGRADED, "d": Verdict.DOWN, "?": Verdict.UNKNOWN}
SHOWN = {Verdict.UP: "u", Verdict.DEGRADED: "g", Verdict.DOWN: "d", Verdict.UNKNOWN: "-"}
DEFAULT_REASON = {
    Verdict.DEGRADED: Reason.SLOW,
    Verdict.DOWN: Reason.HTTP_STATUS,
    Verdict.UNKNOWN: Reason.VANTAGE,
}


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def result(
    minute: int,
    vantage: str,
    verdict: Verdict | str,
    reason: Reason | None = None,
    signature: str | None = None,
    check: str = "x-web",
) -> ProbeResult:
    verdict = verdict if isinstance(verdict, Verdict) else LETTERS[verdict]
    return ProbeResult(
        ts=at(minute),
        check=check,
        vantage=vantage,
        region=REGIONS.get(vantage, "ZZ"),
        surface=Surface.WEB,
        url="https://x.example/home",
        verdict=verdict,
        reason=reason or DEFAULT_REASON.get(verdict),
        signature=signature,
    )


def feed(tracker: CheckTracker, results: Iterable[ProbeResult]) -> list[Event]:
    return [event for r in results for event in tracker.observe(r)]


def kinds(events: Sequence[Event]) -> list[str]:
    return [e.kind for e in events if e.kind != "state"]


# -- the state table ----------------------------------------------------------------------------------

U, G, D, X = Verdict.UP, Verdict.DEGRADED, Verdict.DOWN, Verdict.UNKNOWN

STATE_TABLE = [
    ("all-up", [U, U, U], 2, State.OPERATIONAL),
    ("one-degraded", [U, G, U], 2, State.DEGRADED),
    ("one-down-below-quorum", [D, U, U], 2, State.PARTIAL_OUTAGE),
    ("down-wins-over-degraded", [D, G, G], 2, State.PARTIAL_OUTAGE),
    ("quorum-down", [D, D, U], 2, State.MAJOR_OUTAGE),
    ("all-down", [D, D, D], 2, State.MAJOR_OUTAGE),
    ("quorum-1-one-down", [D, U, U], 1, State.MAJOR_OUTAGE),
    ("quorum-all-two-of-three", [D, D, U], 3, State.PARTIAL_OUTAGE),
    ("quorum-all-three-of-three", [D, D, D], 3, State.MAJOR_OUTAGE),
    ("all-unknown", [X, X, X], 2, State.UNKNOWN),
    ("no-vantages", [], 0, State.UNKNOWN),
    ("unknown-ignored-up", [X, U, X], 2, State.OPERATIONAL),
    ("unknown-ignored-degraded", [X, G, U], 2, State.DEGRADED),
    ("unknown-does-not-count-as-down", [D, X, X], 2, State.PARTIAL_OUTAGE),
    ("single-vantage-down", [D], 1, State.MAJOR_OUTAGE),
]


@pytest.mark.parametrize(
    ("verdicts", "quorum", "expected"), [r[1:] for r in STATE_TABLE], ids=[r[0] for r in STATE_TABLE]
)
def test_check_state_table(verdicts: list[Verdict], quorum: int, expected: State) -> None:
    statuses = {f"v{i}": v for i, v in enumerate(verdicts)}
    assert check_state(statuses, quorum) is expected


QUORUMS = [
    ("majority-1", "majority", 1, 1),
    ("majority-2", "majority", 2, 2),
    ("majority-3", "majority", 3, 2),
    ("majority-4", "majority", 4, 3),
    ("majority-5", "majority", 5, 3),
    ("all-3", "all", 3, 3),
    ("int-below-n", 2, 5, 2),
    ("int-clamped-to-n", 4, 3, 3),
]


@pytest.mark.parametrize(("quorum", "n", "expected"), [q[1:] for q in QUORUMS], ids=[q[0] for q in QUORUMS])
def test_quorum_count(quorum: int | str, n: int, expected: int) -> None:
    assert Policy(quorum=quorum).quorum_count(n) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confirm": 0},
        {"recover": 0},
        {"quorum": 0},
        {"quorum": "most"},
        {"confirm": 2**63},
        {"recover": 2**63},
    ],
    ids=str,
)
def test_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Policy(**kwargs)  # type: ignore[arg-type]


# -- the streak machine: one vantage, a confirmed status after each result ----------------------------

STREAKS = [
    # id, confirm, recover, verdicts, confirmed status after each ("-": unknown)
    ("single-failure-changes-nothing", 2, 2, "uduu", "uuuu"),
    ("fail-every-third-never-down", 2, 2, "uudcuudcuud".replace("c", "u"), "uuuuuuuuuuu"),
    ("two-downs-confirm", 2, 2, "udd", "uud"),
    ("confirm-1-is-immediate", 1, 1, "udud", "udud"),
    ("confirm-3", 3, 2, "udddd", "uuudd"),
    ("first-down-needs-confirmation", 2, 2, "dd", "-d"),
    ("first-up-accepted-at-once", 2, 2, "u", "u"),
    ("first-degraded-accepted-at-once", 2, 2, "g", "g"),
    ("only-unknown-stays-unknown", 2, 2, "???", "---"),
    ("unknowns-then-up", 2, 2, "??u", "--u"),
    ("recover-2", 2, 2, "udduu", "uuddu"),
    ("recover-3", 2, 3, "dduuu", "-dddu"),
    ("recovery-broken-by-down", 2, 2, "ddudduu", "-dddddu"),
    ("unknown-inside-down-run", 2, 2, "ud?d", "uuud"),
    ("unknown-inside-recovery", 2, 2, "ddu?u", "-dddu"),
    ("degraded-follows-latest", 2, 2, "ugugu", "ugugu"),
    ("degraded-recovers-a-down", 2, 2, "ddgg", "-ddg"),
    ("single-down-keeps-degraded", 2, 2, "gdg", "ggg"),
]


@pytest.mark.parametrize(
    ("confirm", "recover", "verdicts", "expected"), [s[1:] for s in STREAKS], ids=[s[0] for s in STREAKS]
)
def test_streak_machine(confirm: int, recover: int, verdicts: str, expected: str) -> None:
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy(confirm=confirm, recover=recover))
    seen = ""
    for minute, letter in enumerate(verdicts):
        tracker.observe(result(minute, "us-east", letter))
        seen += SHOWN[tracker.vantage_status("us-east")]
    assert seen == expected


def test_fail_every_third_never_opens_an_incident() -> None:
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy())
    events = feed(tracker, (result(m, "us-east", "d" if m % 3 == 0 else "u") for m in range(30)))
    assert kinds(events) == []
    assert tracker.state is State.OPERATIONAL


def test_other_checks_and_vantages_are_ignored() -> None:
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy(confirm=1))
    assert tracker.observe(result(0, "us-east", "d", check="x-api")) == []
    assert tracker.observe(result(1, "mars", "d")) == []
    assert tracker.state is State.UNKNOWN


# -- incidents ----------------------------------------------------------------------------------------


def outage() -> list[ProbeResult]:
    """us-east fails first with an error page, tokyo times out, both recover; london stays up."""
    fret, timeout = Reason.ERROR_PAGE, Reason.TIMEOUT
    return [
        *(result(0, v, "u") for v in REGIONS),
        result(1, "us-east", "d", fret, "x-fret"),
        result(2, "us-east", "d", fret, "x-fret"),  # confirmed: partial, incident opens
        result(3, "tokyo", "d", timeout),
        result(4, "tokyo", "d", timeout),  # confirmed: major
        result(5, "us-east", "u"),
        result(5, "tokyo", "u"),
        result(6, "us-east", "u"),  # us-east recovered: partial again
        result(6, "tokyo", "d", timeout),  # tokyo's recovery broken
        result(7, "tokyo", "u"),  # first result of the recovery that ends it
        result(8, "tokyo", "u"),  # tokyo recovered: operational, resolved
        result(9, "london", "u"),
    ]


def test_incident_lifecycle() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy())
    events = feed(tracker, outage())
    # Updated twice: when tokyo escalates it to major, and when timeouts outnumber the error pages.
    assert kinds(events) == ["opened", "updated", "updated", "resolved"]
    states = [(e.old_state, e.new_state, e.ts) for e in events if e.kind == "state"]
    assert states == [
        (State.UNKNOWN, State.OPERATIONAL, at(0)),
        (State.OPERATIONAL, State.PARTIAL_OUTAGE, at(2)),
        (State.PARTIAL_OUTAGE, State.MAJOR_OUTAGE, at(4)),
        (State.MAJOR_OUTAGE, State.PARTIAL_OUTAGE, at(6)),
        (State.PARTIAL_OUTAGE, State.OPERATIONAL, at(8)),
    ]
    opened, updated, _, resolved = (e for e in events if e.kind != "state")
    assert opened.incident == Incident(
        "x-web", State.PARTIAL_OUTAGE, Reason.ERROR_PAGE, "x-fret", at(1), at(2), None, ("us-east",), ("US",)
    )
    assert opened.vantage == "us-east"
    assert updated.incident == replace(
        opened.incident, state=State.MAJOR_OUTAGE, vantages=("tokyo", "us-east"), regions=("JP", "US")
    )  # two error pages, two timeouts: the first seen stays the cause
    assert resolved.incident == Incident(
        "x-web",
        State.MAJOR_OUTAGE,  # the worst reached, though it ended as a partial outage
        Reason.TIMEOUT,  # three timeouts against two error pages
        None,
        started_at=at(1),
        detected_at=at(2),
        resolved_at=at(7),
        vantages=("tokyo", "us-east"),
        regions=("JP", "US"),
    )
    assert tracker.open_incident is None and tracker.state is State.OPERATIONAL


def test_revision_follows_every_vantage_status_change_even_without_a_state_change() -> None:
    """A third vantage confirming a major outage, or one of three recovering, changes no state: the
    revision still moves, so a live view of per-vantage statuses knows to follow."""
    tracker = CheckTracker("x-web", REGIONS, Policy())
    feed(tracker, [result(0, v, "u") for v in REGIONS])
    feed(tracker, [result(m, v, "d") for m in (1, 2) for v in ("us-east", "tokyo")])
    assert tracker.state is State.MAJOR_OUTAGE
    seen = tracker.revision
    feed(tracker, [result(3, "london", "d")])  # not confirmed yet: nothing changed
    assert tracker.revision == seen
    events = feed(tracker, [result(4, "london", "d")])
    assert [e.kind for e in events] == ["updated"] and tracker.vantage_status("london") is Verdict.DOWN
    assert tracker.revision > seen
    seen = tracker.revision
    events = feed(tracker, [result(m, "london", "u") for m in (5, 6)])  # one of three recovers
    assert [e.kind for e in events] == [] and tracker.state is State.MAJOR_OUTAGE
    assert tracker.revision > seen


def test_started_at_is_the_earliest_run_of_the_vantages_that_opened_it() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy(confirm=3, quorum=1))
    feed(tracker, [result(0, "tokyo", "d"), result(1, "us-east", "d"), result(2, "tokyo", "d")])
    feed(tracker, [result(3, "us-east", "d"), result(4, "tokyo", "d")])
    assert tracker.open_incident is not None
    assert (tracker.open_incident.started_at, tracker.open_incident.detected_at) == (at(0), at(4))
    assert tracker.open_incident.vantages == ("tokyo",)


def test_resolved_at_is_the_recovery_of_the_vantage_that_completed_last() -> None:
    tracker = CheckTracker("x-web", {"us-east": "US", "tokyo": "JP"}, Policy(quorum="all"))
    feed(tracker, (result(m, v, "d") for m in (0, 1) for v in ("us-east", "tokyo")))
    feed(tracker, [result(2, "tokyo", "u"), result(3, "us-east", "u"), result(4, "tokyo", "u")])
    assert tracker.state is State.PARTIAL_OUTAGE
    events = feed(tracker, [result(5, "us-east", "u")])
    assert events[-1].kind == "resolved" and events[-1].incident is not None
    assert events[-1].incident.resolved_at == at(3)


DOMINANT = [
    # id, down results as (reason, signature), expected (reason, signature)
    ("most-frequent-reason", [("timeout", None), ("error_page", "a"), ("timeout", None)], ("timeout", None)),
    ("tie-first-seen", [("error_page", "a"), ("timeout", None), ("timeout", None), ("error_page", "a")],
     ("error_page", "a")),
    ("most-frequent-signature", [("error_page", "a"), ("error_page", "b"), ("error_page", "b")],
     ("error_page", "b")),
    ("signature-tie-first-seen", [("error_page", None), ("error_page", "b"), ("error_page", "a")],
     ("error_page", "b")),
    ("signature-of-that-reason", [("timeout", None), ("timeout", None), ("content", "z")], ("timeout", None)),
]  # fmt: skip


@pytest.mark.parametrize(("downs", "expected"), [d[1:] for d in DOMINANT], ids=[d[0] for d in DOMINANT])
def test_dominant_reason_and_signature(
    downs: list[tuple[str, str | None]], expected: tuple[str, str | None]
) -> None:
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy(confirm=1))
    feed(tracker, (result(m, "us-east", "d", Reason(r), s) for m, (r, s) in enumerate(downs)))
    assert tracker.open_incident is not None
    assert (tracker.open_incident.reason, tracker.open_incident.signature) == (
        Reason(expected[0]),
        expected[1],
    )


def test_down_results_before_the_start_do_not_count() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy(confirm=2))
    # Counted, tokyo's and london's DNS failures would tie with the TLS ones, and were seen first.
    feed(tracker, [result(0, "tokyo", "d", Reason.DNS), result(0, "london", "d", Reason.DNS)])
    feed(tracker, [result(1, "us-east", "d", Reason.TLS), result(2, "us-east", "d", Reason.TLS)])
    assert tracker.open_incident is not None and tracker.open_incident.reason is Reason.TLS
    assert tracker.open_incident.started_at == at(1)


def test_unknown_results_neither_open_nor_resolve() -> None:
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy())
    events = feed(tracker, [result(0, "us-east", "d"), result(1, "us-east", "?"), result(2, "us-east", "d")])
    assert kinds(events) == ["opened"]
    assert tracker.open_incident is not None and tracker.open_incident.started_at == at(0)
    events = feed(tracker, [result(3, "us-east", "u"), *(result(m, "us-east", "?") for m in (4, 5, 6))])
    assert kinds(events) == [] and tracker.state is State.MAJOR_OUTAGE


# -- restore and reconfigure --------------------------------------------------------------------------


def test_restore_mid_incident_then_resolve() -> None:
    results = outage()
    live = CheckTracker("x-web", REGIONS, Policy())
    feed(live, results[:7])  # major outage under way
    assert live.open_incident is not None
    stored = replace(live.open_incident, id=7)
    restarted = CheckTracker("x-web", REGIONS, Policy())
    restarted.restore(results[:7], stored)  # silently: restore reports nothing
    assert restarted.state is State.MAJOR_OUTAGE and restarted.open_incident == stored
    events = feed(restarted, results[7:])
    assert kinds(events) == ["updated", "resolved"]
    assert all(e.incident is not None and e.incident.id == 7 for e in events)
    assert events[-1].incident == replace(stored, reason=Reason.TIMEOUT, signature=None, resolved_at=at(7))


def test_restore_with_a_short_window_keeps_the_stored_start() -> None:
    stored = Incident(
        "x-web",
        State.PARTIAL_OUTAGE,
        Reason.DNS,
        None,
        at(-60),
        at(-59),
        vantages=("london",),
        regions=("UK",),
        id=3,
    )
    tracker = CheckTracker("x-web", REGIONS, Policy())
    tracker.restore([result(0, "us-east", "d"), result(1, "us-east", "d"), result(1, "tokyo", "d")], stored)
    assert tracker.open_incident == replace(stored, vantages=("london", "us-east"), regions=("UK", "US"))
    events = feed(tracker, [result(2, "tokyo", "d")])
    assert kinds(events) == ["updated"]
    escalated = replace(stored, state=State.MAJOR_OUTAGE, reason=Reason.HTTP_STATUS)
    assert events[-1].incident == replace(
        escalated, vantages=("london", "tokyo", "us-east"), regions=("JP", "UK", "US")
    )


def test_restore_of_an_incident_that_recovered_unseen() -> None:
    stored = Incident("x-web", State.MAJOR_OUTAGE, Reason.DNS, None, at(-60), at(-59), id=4)
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy())
    tracker.restore([result(m, "us-east", v) for m, v in enumerate("dduu")], stored)
    assert tracker.state is State.OPERATIONAL and tracker.open_incident == stored
    events = feed(tracker, [result(5, "us-east", "u")])
    assert kinds(events) == ["resolved"]
    assert events[-1].incident == replace(stored, resolved_at=at(2))


def test_restore_without_history_waits_for_a_known_state() -> None:
    stored = Incident("x-web", State.PARTIAL_OUTAGE, Reason.DNS, None, at(-60), at(-59), id=5)
    tracker = CheckTracker("x-web", {"us-east": "US"}, Policy())
    tracker.restore([], stored)
    assert feed(tracker, [result(0, "us-east", "d")]) == []
    events = feed(tracker, [result(1, "us-east", "d")])
    assert kinds(events) == ["updated"] and tracker.open_incident is not None
    assert tracker.open_incident.id == 5 and tracker.open_incident.state is State.MAJOR_OUTAGE


def test_reconfigure_removing_the_down_vantage_resolves() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy())
    feed(tracker, [*(result(0, v, "u") for v in REGIONS), result(1, "tokyo", "d"), result(2, "tokyo", "d")])
    events = tracker.reconfigure({"us-east": "US", "london": "UK"}, Policy(), at=at(3))
    assert kinds(events) == ["resolved"] and events[-1].vantage is None
    assert events[-1].incident is not None and events[-1].incident.resolved_at == at(3)
    assert tracker.state is State.OPERATIONAL


def test_reconfigure_adding_vantages_changes_the_quorum() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy())
    feed(tracker, (result(m, v, "d") for m in (0, 1) for v in ("us-east", "tokyo")))
    assert tracker.state is State.MAJOR_OUTAGE
    events = tracker.reconfigure({**REGIONS, "paris": "FR", "berlin": "DE"}, Policy())
    assert [(e.kind, e.new_state, e.ts) for e in events] == [("state", State.PARTIAL_OUTAGE, at(1))]
    assert tracker.vantage_status("paris") is Verdict.UNKNOWN
    assert tracker.open_incident is not None and tracker.open_incident.state is State.MAJOR_OUTAGE


def test_reconfigure_with_a_lower_confirm_confirms_runs_under_way() -> None:
    tracker = CheckTracker("x-web", REGIONS, Policy(confirm=4))
    feed(tracker, [*(result(0, v, "u") for v in REGIONS), result(1, "us-east", "d"), result(2, "tokyo", "d")])
    feed(tracker, [result(3, "us-east", "d"), result(3, "tokyo", "d")])
    events = tracker.reconfigure(REGIONS, Policy(confirm=2))
    assert kinds(events) == ["opened"] and events[-1].incident is not None
    assert events[-1].incident.state is State.MAJOR_OUTAGE and events[-1].incident.vantages == (
        "tokyo",
        "us-east",
    )
    # Both vantages opened it: it started with the earlier of their runs.
    assert (events[-1].incident.started_at, events[-1].incident.detected_at) == (at(1), at(3))


# -- properties ---------------------------------------------------------------------------------------

NAMES = ("us-east", "tokyo", "london", "paris")
Raw = list[tuple[int, Verdict, Reason, str | None, str]]  # vantage index, verdict, reason, signature, check
DOWN_REASONS = [Reason.DNS, Reason.TIMEOUT, Reason.ERROR_PAGE]
steps = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from([U, U, G, D, D, X]),
        st.sampled_from(DOWN_REASONS),
        st.sampled_from([None, "x-fret", "cf"]),
        st.sampled_from(["x-web", "x-app"]),
    ),
    max_size=80,
)
policies = st.builds(
    Policy,
    confirm=st.integers(1, 3),
    recover=st.integers(1, 3),
    quorum=st.sampled_from([1, 2, 3, "majority", "all"]),
)


def build(raw: Raw, n: int) -> list[ProbeResult]:
    """Results one minute apart, from the first `n` vantages."""
    out = []
    for minute, (index, verdict, reason, signature, check) in enumerate(raw):
        down = verdict is Verdict.DOWN
        r = result(minute, NAMES[index % n], verdict, reason if down else None, signature if down else None)
        out.append(replace(r, check=check))
    return out


class Ledger:
    """What a store would keep from the events: incidents by the id it gave them."""

    def __init__(self) -> None:
        self.incidents: dict[int, Incident] = {}

    def feed(self, tracker: CheckTracker, results: Iterable[ProbeResult]) -> None:
        for event in (event for r in results for event in tracker.observe(r)):  # lazily: ids go in at once
            assert event.incident is not None or event.kind == "state"
            if event.kind == "opened" and event.incident is not None:
                new_id = len(self.incidents) + 1
                tracker.assign_id(new_id)
                self.incidents[new_id] = replace(event.incident, id=new_id)
            elif event.kind in ("updated", "resolved") and event.incident is not None:
                assert event.incident.id is not None
                self.incidents[event.incident.id] = event.incident


def has_run(verdicts: list[Verdict], length: int) -> bool:
    run = 0
    for verdict in verdicts:
        run = run + 1 if verdict is Verdict.DOWN else 0
        if run >= length:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(raw=steps, n=st.integers(1, 4), policy=policies)
def test_no_outage_without_confirmed_runs(raw: Raw, n: int, policy: Policy) -> None:
    tracker = CheckTracker("x-web", {name: "ZZ" for name in NAMES[:n]}, policy)
    history: dict[str, list[Verdict]] = {name: [] for name in NAMES[:n]}
    for r in build(raw, n):
        events = tracker.observe(r)
        if r.check == "x-web" and r.verdict is not Verdict.UNKNOWN:
            history[r.vantage].append(r.verdict)
        confirmed = sum(has_run(h, policy.confirm) for h in history.values())
        if any(e.kind == "opened" for e in events) or tracker.state is State.PARTIAL_OUTAGE:
            assert confirmed >= 1
        if tracker.state is State.MAJOR_OUTAGE:
            assert confirmed >= policy.quorum_count(n)


@settings(max_examples=300, deadline=None)
@given(raw=steps, n=st.integers(1, 4), policy=policies)
def test_recover_ups_from_every_vantage_resolve_everything(raw: Raw, n: int, policy: Policy) -> None:
    tracker = CheckTracker("x-web", {name: "ZZ" for name in NAMES[:n]}, policy)
    ledger = Ledger()
    results = build(raw, n)
    ups = [result(len(results) + i, name, "u") for i in range(policy.recover) for name in NAMES[:n]]
    ledger.feed(tracker, [*results, *ups])
    assert tracker.open_incident is None and tracker.state is State.OPERATIONAL
    assert all(i.resolved_at is not None for i in ledger.incidents.values())


@settings(max_examples=300, deadline=None)
@given(raw=steps, n=st.integers(1, 4), policy=policies)
def test_rebuild_equals_live(raw: Raw, n: int, policy: Policy) -> None:
    vantages = {name: REGIONS.get(name, "FR") for name in NAMES[:n]}
    live = {check: CheckTracker(check, vantages, policy) for check in ("x-web", "x-app")}
    ledger = Ledger()
    results = build(raw, n)
    for r in results:
        ledger.feed(live[r.check], [r])
    seen = sorted(
        (replace(i, id=None) for _, i in sorted(ledger.incidents.items())), key=lambda i: i.started_at
    )
    assert rebuild_incidents(reversed(results), {c: (vantages, policy) for c in live}) == seen


@settings(max_examples=300, deadline=None)
@given(raw=steps, n=st.integers(1, 4), policy=policies, split=st.integers(0, 80))
def test_restore_then_continue_equals_uninterrupted(raw: Raw, n: int, policy: Policy, split: int) -> None:
    vantages = {name: REGIONS.get(name, "FR") for name in NAMES[:n]}
    results = [r for r in build(raw, n) if r.check == "x-web"]
    uninterrupted = Ledger()
    uninterrupted.feed(CheckTracker("x-web", vantages, policy), results)
    before, after = results[:split], results[split:]
    interrupted = Ledger()
    first = CheckTracker("x-web", vantages, policy)
    interrupted.feed(first, before)
    second = CheckTracker("x-web", vantages, policy)
    second.restore(before, first.open_incident)
    assert (second.state, second.open_incident) == (first.state, first.open_incident)
    interrupted.feed(second, after)
    assert interrupted.incidents == uninterrupted.incidents
