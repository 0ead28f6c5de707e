"""Prometheus metrics, one registry per app so that tests and workers never share counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _decided: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.latency = Histogram(
            "oo_ml_request_seconds",
            "Request latency by route template and status class.",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.decisions = Counter(
            "oo_ml_decisions_total", "Decisions logged, by policy.", ["policy"], registry=r
        )
        self.feedback = Counter(
            "oo_ml_feedback_total",
            "Feedback recorded, by action and origin (client, legacy, default).",
            ["action", "origin"],
            registry=r,
        )
        # prometheus_client exports no _sum for a histogram whose buckets go below zero, so the
        # distribution and the sum are two metrics.
        self.rewards = Histogram(
            "oo_ml_reward_value",
            "Distribution of the rewards applied, by policy.",
            ["policy"],
            registry=r,
            buckets=(-1.0, -0.5, -0.3, 0.0, 0.1, 0.3, 0.6, 1.0),
        )
        self.reward_sum = Gauge(
            "oo_ml_reward_sum",
            "Sum of the rewards applied by this process, by policy.",
            ["policy"],
            registry=r,
        )
        self.updates = Counter(
            "oo_ml_model_updates_total", "Model updates applied, by policy.", ["policy"], registry=r
        )
        self.shadow_decisions = Counter(
            "oo_ml_shadow_decisions_total",
            "Shadow decisions logged, by shadow policy.",
            ["policy"],
            registry=r,
        )
        self.shadow_agreements = Counter(
            "oo_ml_shadow_agreements_total",
            "Shadow decisions that chose the tip that was served, by shadow policy.",
            ["policy"],
            registry=r,
        )

    def decided(self, policy: str) -> None:
        """Count a decision of ``policy``: ``decisions.labels(policy).inc()`` with the labelled
        child kept (``labels`` takes a lock and builds a key on every call, ~1.5 µs)."""
        child = self._decided.get(policy)
        if child is None:
            child = self._decided[policy] = self.decisions.labels(policy)
        child.inc()
