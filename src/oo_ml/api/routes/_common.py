"""Shared route code: turning a parsed rank body into an engine call, and time stamps."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from oo_ml.api.deps import get_engine, get_metrics
from oo_ml.api.schemas import ScoreIn
from oo_ml.engine import FeedbackResult
from oo_ml.store.base import DecisionRecord, ShadowRecord

__all__ = ["iso_time", "log_feedback", "rank_body"]

log = logging.getLogger("oo_ml.api")


def iso_time(ms: int | None) -> str | None:
    """``2026-11-26T20:43:00Z``, the existing service's time format."""
    return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


async def rank_body(
    request: Request, body: ScoreIn, policy: str | None, event_id: str | None = None
) -> DecisionRecord:
    """Decide and log for a ``/score``-shaped body."""
    engine = get_engine(request)
    candidates = body.candidates
    shadows: list[ShadowRecord] = []
    job = engine.rank_job(
        body.user_id,
        body.context.to_core(),
        [c.to_core() for c in candidates],
        policy=policy,
        source_ids=[c.source_id for c in candidates],
        content=[c.content for c in candidates] if engine.config.store_content else None,
        event_id=event_id,
        shadows_out=shadows,
    )
    record = await engine.run_async(job)
    metrics = get_metrics(request)
    metrics.decisions.labels(record.policy).inc()
    for shadow in shadows:
        metrics.shadow_decisions.labels(shadow.policy).inc()
        if shadow.chosen == record.chosen:
            metrics.shadow_agreements.labels(shadow.policy).inc()
    if log.isEnabledFor(logging.INFO):
        log.info(
            "decision",
            extra={
                "event_id": record.event_id,
                "policy": record.policy,
                "tip_id": record.chosen_id,
            },
        )
    return record


def log_feedback(request: Request, result: FeedbackResult) -> None:
    feedback = result.feedback
    if not result.duplicate:
        metrics = get_metrics(request)
        metrics.feedback.labels(feedback.action or "none", feedback.origin).inc()
        if feedback.applied:
            metrics.rewards.labels(feedback.policy).observe(feedback.reward)
            metrics.reward_sum.labels(feedback.policy).inc(feedback.reward)
            metrics.updates.labels(feedback.policy).inc()
    if log.isEnabledFor(logging.INFO):
        log.info(
            "feedback",
            extra={
                "event_id": feedback.event_id,
                "reward_milli": feedback.reward_milli,
                "duplicate": result.duplicate,
            },
        )
