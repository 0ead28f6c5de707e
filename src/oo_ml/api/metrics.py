"""Prometheus metrics, one registry per app so that tests and workers never share counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

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
        self.rewards = Histogram(
            "oo_ml_reward",
            "Rewards applied, by policy (its _sum is the reward sum).",
            ["policy"],
            registry=r,
            buckets=(-1.0, -0.5, -0.3, 0.0, 0.1, 0.3, 0.6, 1.0),
        )
        self.updates = Counter(
            "oo_ml_model_updates_total", "Model updates applied, by policy.", ["policy"], registry=r
        )
