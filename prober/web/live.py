"""What a running daemon knows that the database does not say: confirmed states, and live metrics.

The daemon owns one `LiveState`, calls it from the event loop as results and state changes come,
and hands it to `create_app(..., live=live)`; the web handlers copy what they need on the loop, and
the web app subscribes to hear of state changes (to make its page again at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from prober.config import Config
from prober.model import Incident, ProbeResult, State, Verdict
from prober.web.metrics import Health, ProberMetrics
from prober.web.view import LiveIncidents, LiveStates

__all__ = ["Health", "LiveState"]


class LiveState:
    """The daemon's view of its checks: their configuration, confirmed states and metrics."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config
        self.metrics = ProberMetrics()
        self._states: dict[str, tuple[State, Mapping[str, Verdict] | None]] = {}
        self._incidents: dict[str, Incident] = {}  # check -> its open incident, saved or not
        self._listeners: list[Callable[[], None]] = []
        self.health: Callable[[], Health] | None = None
        self.agents: Callable[[], list[dict[str, object]]] | None = None  # set by a NATS collector
        self.silent: dict[str, datetime] = {}  # agent vantage -> silent since (prober.agents)
        self.claims: Callable[[], Mapping[str, Any]] | None = None  # the claims poller's sources, if any
        if config is not None:
            self.metrics.configure(config)

    def configure(self, config: Config) -> None:
        """Adopt a (re)loaded configuration: removed checks are forgotten."""
        self.config = config
        self.metrics.configure(config)
        names = {c.name for c in config.checks}
        for check in set(self._states) - names:
            del self._states[check]
        for check in set(self._incidents) - names:
            del self._incidents[check]
        self._notify()

    def set_health(self, health: Callable[[], Health]) -> None:
        """Where /healthz and /metrics read the daemon's own health (quick: called on the loop)."""
        self.health = health
        self.metrics.health = health

    def observe(self, result: ProbeResult) -> None:
        """A probe result was recorded."""
        self.metrics.observe(result)

    def set_state(self, check: str, state: State, statuses: Mapping[str, Verdict] | None = None) -> None:
        """A check's confirmed state changed (with, if known, the confirmed status of each vantage)."""
        self._states[check] = (state, None if statuses is None else dict(statuses))
        self.metrics.set_state(check, state)
        self._notify()

    def set_open_incidents(self, incidents: Iterable[Incident]) -> None:
        """The incidents open now, across all checks."""
        self._incidents = {i.check: i for i in incidents}
        self.metrics.set_open_incidents(self._incidents.values())
        self._notify()

    def set_silent(self, vantage: str, since: datetime | None) -> None:
        """An agent's vantage fell silent at `since`, or (None) speaks again: the page says so."""
        if since is None:
            self.silent.pop(vantage, None)
        else:
            self.silent[vantage] = since
        self._notify()

    def states(self) -> LiveStates:
        """A copy of the confirmed states, safe to read from another thread."""
        return dict(self._states)

    def open_incidents(self) -> LiveIncidents:
        """A copy of the open incidents by check (ids None until saved), safe to read from another thread."""
        return dict(self._incidents)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` when a state, the open incidents or the configuration change; returns
        the function that unsubscribes it. Listeners must be quick: they run in the daemon's loop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()
