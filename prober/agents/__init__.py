"""Agents: regional vantages on other machines, their results carried by NATS JetStream.

`prober agent --vantage NAME` probes on a regional machine and publishes each result; the collector
(`prober run --nats URL`) publishes its configuration, consumes the results, stores them once and
derives state across local and agent vantages. Only `command` and `wire` are imported without
`--nats`; they import nothing of NATS.
"""

from __future__ import annotations

STREAM = "PROBER_RESULTS"  # the JetStream stream of results
BUCKET = "prober-config"  # the key-value bucket the collector publishes its configuration to
CONFIG_KEY = "checks"  # the key of the configuration's text in BUCKET
CONSUMER = "prober-collector"  # the collector's durable pull consumer
RESULTS = "prober.results"  # + ".<vantage>"
HEARTBEATS = "prober.heartbeat"  # + ".<vantage>"


def results_subject(vantage: str) -> str:
    """The subject an agent publishes its results to."""
    return f"{RESULTS}.{vantage}"


def heartbeat_subject(vantage: str) -> str:
    """The subject an agent publishes its heartbeats to."""
    return f"{HEARTBEATS}.{vantage}"
