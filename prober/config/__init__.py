"""checks.yaml -> validated, frozen models; every error is reported at once, located as file:line:col."""

from __future__ import annotations

from prober.config.fields import (
    METHODS,
    NAME_PATTERN,
    Count,
    Duration,
    Interval,
    MaxBody,
    Name,
    OptCount,
    OptDuration,
    OptInterval,
    OptMaxBody,
    OptQuorum,
    OptTimeout,
    QuorumField,
    Timeout,
)
from prober.config.load import load_config, parse_config
from prober.config.model import (
    DEFAULT_RETENTION,
    BrowserSettings,
    Check,
    CheckBrowser,
    Config,
    Defaults,
    Expect,
    PageSettings,
    Quorum,
    Selection,
    Vantage,
)
from prober.config.source import ConfigError, ConfigIssue
from prober.config.spec import json_schema
from prober.config.units import parse_duration, parse_size

__all__ = [
    "DEFAULT_RETENTION",
    "METHODS",
    "NAME_PATTERN",
    "BrowserSettings",
    "Check",
    "CheckBrowser",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Count",
    "Defaults",
    "Duration",
    "Expect",
    "Interval",
    "MaxBody",
    "Name",
    "OptCount",
    "OptDuration",
    "OptInterval",
    "OptMaxBody",
    "OptQuorum",
    "OptTimeout",
    "PageSettings",
    "Quorum",
    "QuorumField",
    "Selection",
    "Timeout",
    "Vantage",
    "json_schema",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
]
