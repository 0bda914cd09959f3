"""Pure: per-vantage streaks, quorum and incident transitions. No I/O, no clock: times come from results.

Each vantage of a check has a *confirmed* status: a streak machine turns its raw verdicts into a status
that one stray failure does not flip. The check's state follows from those statuses and the quorum; an
incident opens when the check enters partial_outage or major_outage and resolves when it leaves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from prober.model import STATE_SEVERITY, Incident, ProbeResult, Reason, State, Verdict

OUTAGES = frozenset({State.PARTIAL_OUTAGE, State.MAJOR_OUTAGE})
MAX_STREAK = 2**63 - 2  # a restart reads back confirm + 1 results per vantage: a 64-bit SQLite integer


@dataclass(frozen=True)
class Policy:
    """How a check's vantages are confirmed down or recovered, and how many down make a major outage."""

    confirm: int = 2  # consecutive down results before a vantage counts as down
    recover: int = 2  # consecutive non-down results before a down vantage counts as up again
    quorum: int | str = "majority"  # an integer, "majority" or "all"

    def __post_init__(self) -> None:
        if self.confirm < 1 or self.recover < 1:
            raise ValueError(f"confirm and recover must be at least 1, not {self.confirm}, {self.recover}")
        if max(self.confirm, self.recover) > MAX_STREAK:
            raise ValueError(f"confirm and recover must be at most {MAX_STREAK}, what SQLite can count")
        if isinstance(self.quorum, int) and self.quorum < 1:
            raise ValueError(f"quorum must be at least 1, not {self.quorum}")
        if isinstance(self.quorum, str) and self.quorum not in ("majority", "all"):
            raise ValueError(f'quorum must be an integer, "majority" or "all", not {self.quorum!r}')

    def quorum_count(self, n: int) -> int:
        """How many of a check's `n` vantages must be down for a major outage."""
        if isinstance(self.quorum, int):
            return min(self.quorum, n)
        return n // 2 + 1 if self.quorum == "majority" else n


@dataclass(frozen=True)
class Event:
    """Something `CheckTracker` reports: a state change, or an incident opened, updated or resolved."""

    kind: Literal["state", "opened", "updated", "resolved"]
    check: str
    ts: datetime
    old_state: State
    new_state: State
    incident: Incident | None
    vantage: str | None  # whose result caused it; None for a reconfiguration


def check_state(statuses: Mapping[str, Verdict], quorum_count: int) -> State:
    """A check's state from the confirmed status of each of its vantages (DESIGN's state table)."""
    verdicts = list(statuses.values())
    down = verdicts.count(Verdict.DOWN)
    if down:  # `down` first: a quorum of 0 (no vantages) must not make a major outage out of nothing
        return State.MAJOR_OUTAGE if down >= quorum_count else State.PARTIAL_OUTAGE
    if Verdict.DEGRADED in verdicts:
        return State.DEGRADED
    # Vantages still unknown are ignored: one vantage up and the rest silent is operational.
    return State.OPERATIONAL if Verdict.UP in verdicts else State.UNKNOWN


@dataclass
class _Vantage:
    """The streaks of one vantage: mutable, private to its tracker."""

    region: str
    status: Verdict = Verdict.UNKNOWN  # confirmed
    last: Verdict = Verdict.UNKNOWN  # the latest verdict other than unknown
    down_run: int = 0  # consecutive down results, unknowns skipped
    down_since: datetime | None = None  # the first result of that run
    downs: list[ProbeResult] = field(default_factory=list)  # that run, kept until it confirms
    up_run: int = 0  # consecutive non-down results, unknowns skipped
    up_since: datetime | None = None  # the first result of that run
    silent: bool = False  # an agent that stopped speaking: unknown, out of the quorum, results ignored

    def feed(self, result: ProbeResult, policy: Policy) -> datetime | None:
        """Count a result that is not unknown; the start of the recovery if it just completed one."""
        if result.verdict is Verdict.DOWN:
            if self.down_run == 0:
                self.down_since = result.ts
            self.down_run += 1
            self.up_run, self.up_since = 0, None
            if self.status is not Verdict.DOWN:  # bounded: at most `confirm` results before it confirms
                self.downs.append(result)
        else:
            if self.up_run == 0:
                self.up_since = result.ts
            self.up_run += 1
            self.down_run, self.downs = 0, []
        self.last = result.verdict
        return self.settle(policy)

    def settle(self, policy: Policy) -> datetime | None:
        """Apply the policy to the current runs; the start of the recovery if one just completed."""
        if self.status is not Verdict.DOWN:
            if self.down_run >= policy.confirm:
                self.status = Verdict.DOWN
            elif self.last in (Verdict.UP, Verdict.DEGRADED):
                # Up and degraded need no confirmation: the status follows the latest of them at once.
                self.status = self.last
        elif self.up_run >= policy.recover:
            self.status = self.last
            return self.up_since
        return None


class CheckTracker:
    """Follows one check across its vantages and reports state changes and incidents."""

    def __init__(
        self,
        check: str,
        vantages: Mapping[str, str],
        policy: Policy,
        maintenance: Callable[[datetime], bool] | None = None,
    ) -> None:
        """Track `check`, probed from `vantages` (name -> region), under `policy`.

        `maintenance` says whether a time falls in one of the check's maintenance windows: an incident
        that starts or is detected in one is marked `maintenance`.
        """
        self.check = check
        self.policy = policy
        self.maintenance = maintenance
        self._vantages = {name: _Vantage(region) for name, region in vantages.items()}
        # Bumped whenever a vantage's confirmed status changes, even when the check's state does not
        # (a second vantage confirming a major outage): what shows per-vantage status must follow it.
        self.revision = 0
        self._reset()

    def _reset(self) -> None:
        self._state = State.UNKNOWN
        self._incident: Incident | None = None
        # Down results of the open incident, by reason, then by signature: dicts keep first-seen order.
        self._reasons: dict[Reason, int] = {}
        self._signatures: dict[Reason, dict[str, int]] = {}
        self._last_ts: datetime | None = None
        self._last_exit: datetime | None = None  # when the check last left an outage

    @property
    def state(self) -> State:
        """The check's current state."""
        return self._state

    @property
    def open_incident(self) -> Incident | None:
        """The incident in progress, if any."""
        return self._incident

    def vantage_status(self, name: str) -> Verdict:
        """The confirmed status of one vantage (KeyError if the check has no such vantage)."""
        return self._vantages[name].status

    def statuses(self) -> dict[str, Verdict]:
        """The confirmed status of every vantage."""
        return {name: v.status for name, v in self._vantages.items()}

    def observe(self, result: ProbeResult) -> list[Event]:
        """Take one result into account; what changed. Other checks and unknown vantages are ignored."""
        vantage = self._vantages.get(result.vantage)
        if result.check != self.check or vantage is None or vantage.silent:
            return []
        self._last_ts = result.ts if self._last_ts is None else max(self._last_ts, result.ts)
        if result.verdict is Verdict.UNKNOWN:  # never counts for or against, never breaks a run
            return []
        before = vantage.status
        recovered_at = vantage.feed(result, self.policy)
        if vantage.status is not before:
            self.revision += 1
        if result.verdict is Verdict.DOWN and self._incident is not None:
            self._count(result)
        return self._transition(result.ts, result.vantage, recovered_at)

    def reconfigure(
        self, vantages: Mapping[str, str], policy: Policy, at: datetime | None = None
    ) -> list[Event]:
        """Adopt a reloaded configuration at `at` (default: the latest result's time); what changed."""
        old = self._vantages
        self._vantages = {name: old.get(name) or _Vantage(region) for name, region in vantages.items()}
        for name, region in vantages.items():
            self._vantages[name].region = region
        self.policy = policy
        self.revision += 1  # vantages added or removed: the per-vantage view changed
        # Runs already under way are judged by the new policy: a lower `confirm` can confirm one now.
        recoveries = [t for v in self._vantages.values() if (t := v.settle(policy)) is not None]
        ts = at or self._last_ts
        if ts is None:  # nothing observed yet: every vantage is unknown, nothing can happen
            return []
        return self._transition(ts, None, max(recoveries, default=None))

    def set_silent(self, name: str, silent: bool) -> list[Event]:
        """An agent's vantage fell silent, or spoke again; what changed.

        A silent vantage is unknown and leaves the quorum: it counts neither for nor against the
        check. Silence can resolve or escalate an incident, never open one (it takes a down away).
        """
        vantage = self._vantages.get(name)
        if vantage is None or vantage.silent is silent:
            return []
        # Its streaks start again when it speaks; the quorum counts the vantages heard.
        self._vantages[name] = _Vantage(vantage.region, silent=silent)
        self.revision += 1
        if self._last_ts is None:
            return []
        return self._transition(self._last_ts, name, None)

    def restore(self, recent: Sequence[ProbeResult], open_incident: Incident | None) -> None:
        """Rebuild streaks and state from `recent` results after a restart, adopting the stored open incident.

        Emits nothing. If the replay ends in an outage, the adopted incident takes it over (worst state and
        vantages merged, its id, start and detection kept). If the replay ends outside an outage, the
        adopted incident resolves with the next result that leaves the state known (not unknown), at the
        time the replay saw the check recover if it did. An outage replayed without `open_incident` is
        announced as opened by the next result, since the store never heard of it.
        """
        if open_incident is not None and open_incident.check != self.check:
            raise ValueError(f"incident of {open_incident.check!r} given to the tracker of {self.check!r}")
        self._vantages = {name: _Vantage(v.region) for name, v in self._vantages.items()}
        self._reset()
        for result in sorted(recent, key=lambda r: r.ts):
            self.observe(result)
        self.revision += 1
        replayed, self._incident = self._incident, open_incident
        if replayed is not None and open_incident is not None:
            self._incident = self._merge(open_incident, replayed.state, set(replayed.vantages))

    def assign_id(self, incident_id: int) -> None:
        """Record the id the store gave the open incident, so later events carry it."""
        if self._incident is None:
            raise ValueError(f"{self.check}: no open incident to give id {incident_id}")
        self._incident = replace(self._incident, id=incident_id)

    def _transition(self, ts: datetime, vantage: str | None, recovered_at: datetime | None) -> list[Event]:
        """Recompute the check's state and the incident after a change; the events it makes."""
        old = self._state
        heard = sum(not v.silent for v in self._vantages.values())
        new = self._state = check_state(self.statuses(), self.policy.quorum_count(heard))
        before = self._incident
        kind: Literal["opened", "updated", "resolved"] | None = None
        if old in OUTAGES and new not in OUTAGES:
            self._last_exit = recovered_at or ts
        if new in OUTAGES:
            self._incident = self._open(ts, new) if before is None else self._extend(before, new)
            kind = "opened" if before is None else "updated" if self._incident != before else None
        # An adopted incident the replay did not see in an outage (old not in OUTAGES) resolves as soon
        # as the state is known; a live one resolves when the check leaves the outage, even to unknown.
        elif before is not None and (new is not State.UNKNOWN or old in OUTAGES):
            if old in OUTAGES:
                resolved_at = recovered_at or ts
            else:
                exit_at = self._last_exit
                resolved_at = exit_at if exit_at is not None and exit_at >= before.started_at else ts
            self._incident = replace(before, resolved_at=resolved_at)
            kind = "resolved"
        incident = self._incident
        if kind == "resolved":
            self._incident, self._reasons, self._signatures = None, {}, {}
        events: list[Event] = []
        if new is not old:
            events.append(Event("state", self.check, ts, old, new, incident, vantage))
        if kind is not None:
            events.append(Event(kind, self.check, ts, old, new, incident, vantage))
        return events

    def _open(self, ts: datetime, state: State) -> Incident:
        """A new incident: it started with the earliest run that confirmed one of the down vantages."""
        down = [v for v in self._vantages.values() if v.status is Verdict.DOWN]
        started = min(v.down_since or ts for v in down)
        self._reasons, self._signatures = {}, {}
        runs = [r for v in self._vantages.values() for r in v.downs if r.ts >= started]
        for result in sorted(runs, key=lambda r: r.ts):
            self._count(result)
        reason, signature = self._dominant()
        planned = self.maintenance is not None and (self.maintenance(started) or self.maintenance(ts))
        incident = Incident(
            self.check, state, reason, signature, started_at=started, detected_at=ts, maintenance=planned
        )
        return self._merge(incident, state, self._down())

    def _extend(self, incident: Incident, state: State) -> Incident:
        """The open incident, with the worst state, the down vantages and the dominant cause so far."""
        if self._reasons:  # an adopted incident without replayed down results keeps its stored cause
            reason, signature = self._dominant()
            incident = replace(incident, reason=reason, signature=signature)
        return self._merge(incident, state, self._down())

    def _merge(self, incident: Incident, state: State, down: set[str]) -> Incident:
        """`incident` with the worse of the two states, and `down` added to its vantages and regions."""
        worst = state if STATE_SEVERITY[state] > STATE_SEVERITY[incident.state] else incident.state
        regions = {self._vantages[name].region for name in down if name in self._vantages}
        return replace(
            incident,
            state=worst,
            vantages=_union(incident.vantages, down),
            regions=_union(incident.regions, regions),
        )

    def _down(self) -> set[str]:
        return {name for name, v in self._vantages.items() if v.status is Verdict.DOWN}

    def _count(self, result: ProbeResult) -> None:
        if result.reason is None:
            return
        self._reasons[result.reason] = self._reasons.get(result.reason, 0) + 1
        signatures = self._signatures.setdefault(result.reason, {})
        if result.signature is not None:
            signatures[result.signature] = signatures.get(result.signature, 0) + 1

    def _dominant(self) -> tuple[Reason | None, str | None]:
        """The most frequent reason and its most frequent signature; `max` keeps the first seen on ties."""
        if not self._reasons:
            return None, None
        reason = max(self._reasons, key=lambda r: self._reasons[r])
        signatures = self._signatures.get(reason, {})
        return reason, max(signatures, key=lambda s: signatures[s]) if signatures else None


def _union(old: Iterable[str], new: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(old) | set(new)))


def rebuild_incidents(
    results: Iterable[ProbeResult], trackers: Mapping[str, tuple[Mapping[str, str], Policy]]
) -> list[Incident]:
    """Replay `results` in time order through fresh trackers (check -> (vantages, policy)); every incident.

    The incidents come in start order, resolved and open, without ids: the same values a live tracker
    reported for the same results observed in time order. Results of checks not in `trackers` are ignored.
    """
    live = {check: CheckTracker(check, vantages, policy) for check, (vantages, policy) in trackers.items()}
    found: list[Incident] = []
    current: dict[str, int] = {}  # check -> index in `found` of its open incident
    for result in sorted(results, key=lambda r: r.ts):
        tracker = live.get(result.check)
        if tracker is None:
            continue
        for event in tracker.observe(result):
            if event.incident is None or event.kind == "state":
                continue
            if event.kind == "opened":
                current[event.check] = len(found)
                found.append(event.incident)
            else:
                found[current[event.check]] = event.incident
    return sorted(found, key=lambda i: i.started_at)
