"""Shared route code: turning a parsed rank body into an engine call, and time stamps."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from oo_ml.api.deps import get_engine, get_metrics
from oo_ml.api.metrics import Metrics
from oo_ml.api.rank_request import RankRequest
from oo_ml.api.schemas import ScoreIn
from oo_ml.engine import Engine, FeedbackResult
from oo_ml.store.base import DecisionRecord, ShadowRecord

__all__ = ["decide", "iso_time", "log_feedback", "note_feedback", "rank_body"]

log = logging.getLogger("oo_ml.api")


def iso_time(ms: int | None) -> str | None:
    """``2026-11-26T20:43:00Z``, the existing service's time format."""
    return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


async def rank_body(
    request: Request, body: ScoreIn, policy: str | None, event_id: str | None = None
) -> DecisionRecord:
    """Decide and log for a ``/score``-shaped body."""
    ranked = RankRequest.of(body, policy, event_id)
    return await decide(get_engine(request), get_metrics(request), ranked)


async def decide(engine: Engine, metrics: Metrics, request: RankRequest) -> DecisionRecord:
    """:func:`rank_body` without a request, for the direct path of :mod:`oo_ml.api.fast`."""
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


def log_feedback(request: Request, result: FeedbackResult) -> None:
    note_feedback(get_metrics(request), result)


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
