"""Pure: which agents speak, which fell silent, and how far their clocks are from the collector's.

An agent that has not been heard for SILENT_AFTER heartbeats is silent: its vantage is unknown and
leaves the quorum until it speaks again. Times come in as arguments, so this is tested with tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prober.agents.wire import Heartbeat
from prober.model import iso

SILENT_AFTER = 3  # heartbeats missed before an agent counts as silent
DEFAULT_INTERVAL = 5.0  # the heartbeat period assumed for an agent not heard yet
MAX_SKEW = 1.0  # seconds of clock difference above which the collector warns


@dataclass
class AgentStatus:
    """What the collector knows of one agent."""

    vantage: str
    region: str
    since: datetime  # when the collector started waiting for it
    interval: float = DEFAULT_INTERVAL
    heard_at: datetime | None = None  # the collector's time of the latest heartbeat
    skew_s: float | None = None  # the agent's clock minus the collector's, at the latest heartbeat
    silent_since: datetime | None = None  # set while silent: the last time it was heard (or waited for)
    probes: int = 0
    dropped: int = 0
    config: str | None = None

    def to_json(self, current_config: str | None = None) -> dict[str, Any]:
        """The agent as /api/agents shows it."""
        return {
            "vantage": self.vantage,
            "region": self.region,
            "state": "silent" if self.silent_since is not None else "speaking",
            "silent_since": None if self.silent_since is None else iso(self.silent_since),
            "heard_at": None if self.heard_at is None else iso(self.heard_at),
            "heartbeat_s": self.interval,
            "clock_skew_s": None if self.skew_s is None else round(self.skew_s, 3),
            "clock_skewed": self.skew_s is not None and abs(self.skew_s) > MAX_SKEW,
            "probes": self.probes,
            "dropped": self.dropped,
            "config": self.config,
            "config_current": None if current_config is None else self.config == current_config,
        }


class Roster:
    """The agents of a configuration, their heartbeats and silences."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentStatus] = {}

    def configure(self, vantages: Iterable[tuple[str, str]], now: datetime) -> None:
        """Follow these agent vantages (name, region); a new one is waited for from `now`."""
        wanted = dict(vantages)
        for name in set(self.agents) - set(wanted):
            del self.agents[name]
        for name, region in wanted.items():
            agent = self.agents.get(name)
            if agent is None:
                self.agents[name] = AgentStatus(name, region, since=now)
            else:
                agent.region = region

    def heard(self, beat: Heartbeat, now: datetime) -> tuple[bool, bool]:
        """Take a heartbeat received at `now`: (it spoke again after silence, its clock became skewed)."""
        agent = self.agents.get(beat.vantage)
        if agent is None:
            return False, False
        was_skewed = agent.skew_s is not None and abs(agent.skew_s) > MAX_SKEW
        agent.heard_at, agent.interval = now, beat.interval
        agent.skew_s = (beat.sent_at - now).total_seconds()
        agent.probes, agent.dropped, agent.config = beat.probes, beat.dropped, beat.config
        spoke_again = agent.silent_since is not None
        agent.silent_since = None
        return spoke_again, abs(agent.skew_s) > MAX_SKEW and not was_skewed

    def fell_silent(self, now: datetime) -> list[AgentStatus]:
        """The agents not heard for SILENT_AFTER heartbeats that were not silent yet; now they are."""
        out = []
        for agent in self.agents.values():
            last = agent.heard_at or agent.since
            if agent.silent_since is None and (now - last).total_seconds() > SILENT_AFTER * agent.interval:
                agent.silent_since = last
                out.append(agent)
        return out

    def silent(self) -> dict[str, datetime]:
        """Silent agents' vantages, and since when."""
        return {a.vantage: a.silent_since for a in self.agents.values() if a.silent_since is not None}
