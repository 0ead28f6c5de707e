"""Shared route code: a rank request's decision, feedback's metrics, and time stamps."""

from __future__ import annotations

import logging
import time

from oo_ml.api.metrics import Metrics
from oo_ml.api.rank_request import RankRequest
from oo_ml.engine import Engine, FeedbackResult
from oo_ml.store.base import DecisionRecord, ShadowRecord

__all__ = ["decide", "iso_time", "note_feedback"]

log = logging.getLogger("oo_ml.api")


def iso_time(ms: int | None) -> str | None:
    """``2026-11-26T20:43:00Z``, the existing service's time format."""
    return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


async def decide(engine: Engine, metrics: Metrics, request: RankRequest) -> DecisionRecord:
    """Decide and log for a ``/score``-shaped body's request (the routes' and the direct
    path's)."""
    shadows: list[ShadowRecord] = []
    job = engine.rank_job(
        request.user_id,
        request.context,
        request.candidates,
        policy=request.policy,
        source_ids=request.source_ids,
        content=request.contents if engine.config.store_content else None,
        event_id=request.event_id,
        shadows_out=shadows,
    )
    record = await engine.run_async(job)
    metrics.decided(record.policy)
    for shadow in shadows:
        metrics.shadow_decisions.labels(shadow.policy).inc()
        if shadow.chosen == record.chosen:
            metrics.shadow_agreements.labels(shadow.policy).inc()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "decision",
            extra={
                "event_id": record.event_id,
                "policy": record.policy,
                "tip_id": record.chosen_id,
            },
        )
    return record


def note_feedback(metrics: Metrics, result: FeedbackResult) -> None:
    """Count and log recorded feedback."""
    feedback = result.feedback
    if not result.duplicate:
        metrics.feedback.labels(feedback.action or "none", feedback.origin).inc()
        if feedback.applied:
            metrics.rewards.labels(feedback.policy).observe(feedback.reward)
            metrics.reward_sum.labels(feedback.policy).inc(feedback.reward)
            metrics.updates.labels(feedback.policy).inc()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "feedback",
            extra={
                "event_id": feedback.event_id,
                "reward_milli": feedback.reward_milli,
                "duplicate": result.duplicate,
            },
        )
