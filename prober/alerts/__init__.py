"""Alerts: notifications of incidents through an outbox in SQLite, delivered to named channels.

The core never imports this package at module level: the configuration loads `settings` when
`alerts:` is there, the daemon starts `Alerts`, and the CLI registers `prober alerts`.
"""

from __future__ import annotations

from prober.alerts.sender import Alerts

__all__ = ["Alerts"]
