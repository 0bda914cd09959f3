"""`prober demo`: an outage like the one of 2022-12-28, replayed on loopback, and what prober made of it.

A local target serves a web surface (desktop pages), a mobile API (timeline and notifications) and
its own status JSON, which says "All Systems Operational" throughout. A script, timed in ticks of
one probe interval, decides what each request gets from its elapsed time and from the peer address,
which tells the three vantages apart (US 127.0.0.2, JP 127.0.0.3, UK 127.0.0.4). The real daemon
probes the target with a generated configuration; at the end the report compares the script, what
the status page claimed, and what prober measured.

Every window of the script is a whole number of ticks and at least three long, and for each check
its edges are moved (by at most half a tick) to fall half-way between two of the check's probes. So
each vantage sees the same number of failures in every run, at any speed: the incidents and the
availability figures do not depend on timing luck.
"""

from __future__ import annotations

from prober.demo.render import Findings, dumps, findings, findings_json, format_findings, span
from prober.demo.run import DemoRun, check_loopback, prepare_db, quiet_origin, run_demo, tick_for
from prober.demo.script import (
    CLAIM,
    DEFAULT_DURATION,
    ERROR_PAGE,
    MIN_TICK,
    REGION_OF_PEER,
    ROUTES,
    SCRIPT,
    TICKS,
    VANTAGES,
    WEB,
    Route,
    Target,
    Window,
    config_yaml,
    failing,
)

__all__ = [
    "CLAIM",
    "DEFAULT_DURATION",
    "ERROR_PAGE",
    "MIN_TICK",
    "REGION_OF_PEER",
    "ROUTES",
    "SCRIPT",
    "TICKS",
    "VANTAGES",
    "WEB",
    "DemoRun",
    "Findings",
    "Route",
    "Target",
    "Window",
    "check_loopback",
    "config_yaml",
    "dumps",
    "failing",
    "findings",
    "findings_json",
    "format_findings",
    "prepare_db",
    "quiet_origin",
    "run_demo",
    "span",
    "tick_for",
]
