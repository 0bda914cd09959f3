"""Maintenance windows: planned work: checks are probed, but notify no one and count for nothing."""

from __future__ import annotations

from prober.maintenance.window import Calendar, MaintenancePredicate, Occurrence, active, occurrences, spans

__all__ = ["Calendar", "MaintenancePredicate", "Occurrence", "active", "occurrences", "spans"]
