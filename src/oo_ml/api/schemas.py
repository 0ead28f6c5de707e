"""Request and response bodies. Requests are strict: a JSON string is not a number, ``1`` is
not ``true``, ``12.0`` is not an hour; numbers are finite and in range. Unknown fields are
ignored, as the existing service ignored them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from oo_ml.engine import MAX_EVENT_ID_LENGTH
from oo_ml.types import MAX_DWELL_MS, MAX_ID_LENGTH, MAX_TASK_AGE_DAYS, Candidate, Context

__all__ = [
    "CONTENT_MAX_LENGTH",
    "HARD_MAX_CANDIDATES",
    "POLICY_MAX_LENGTH",
    "CandidateFeaturesIn",
    "CandidateIn",
    "ContextIn",
    "DecisionOut",
    "FeedbackIn",
    "FeedbackOut",
    "OkOut",
    "RankIn",
    "RankOut",
    "RankedOut",
    "RewardIn",
    "ScoreIn",
    "ScoreOut",
    "ShadowDecisionOut",
]

_STRICT = ConfigDict(strict=True, extra="ignore")
HARD_MAX_CANDIDATES = 10_000  # parsing stops here; the configured maximum is checked later
CONTENT_MAX_LENGTH = 10_000
POLICY_MAX_LENGTH = 64

UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
TipId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Hour = Annotated[int, Field(ge=0, le=23)]
Day = Annotated[int, Field(ge=0, le=6, description="Monday = 0 … Sunday = 6")]
Priority = Annotated[int, Field(ge=1, le=4, description="Todoist priority, 1 lowest")]
AgeDays = Annotated[
    float,
    Field(
        ge=-MAX_TASK_AGE_DAYS,
        le=MAX_TASK_AGE_DAYS,
        allow_inf_nan=False,
        description="Days since the due date; negative when not yet due.",
    ),
]


class CandidateFeaturesIn(BaseModel):
    model_config = _STRICT

    hour_of_day: Hour = Field(12, description="Ignored for ranking: the context's hour is used.")
    is_overdue: bool = False
    task_age_days: AgeDays = 0.0
    priority: Priority = 1


class CandidateIn(BaseModel):
    model_config = _STRICT

    id: TipId
    content: str = Field(
        max_length=CONTENT_MAX_LENGTH, description="Task text; kept only if configured."
    )
    source: str = Field(max_length=MAX_ID_LENGTH)
    source_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    features: CandidateFeaturesIn = CandidateFeaturesIn()

    def to_core(self) -> Candidate:
        f = self.features
        return Candidate(self.id, f.is_overdue, f.task_age_days, f.priority, self.source)


class ContextIn(BaseModel):
    model_config = _STRICT

    hour_of_day: Hour = 12
    day_of_week: Day = 0

    def to_core(self) -> Context:
        return Context(self.hour_of_day, self.day_of_week)


class ScoreIn(BaseModel):
    """The existing ``/score`` body."""

    model_config = _STRICT

    user_id: UserId
    candidates: list[CandidateIn] = Field(max_length=HARD_MAX_CANDIDATES)
    context: ContextIn = ContextIn()


class ScoreOut(BaseModel):
    tip_id: str
    score: float
    policy: str


class RewardIn(BaseModel):
    """The existing ``/reward`` body: a numeric reward for a tip the user was shown."""

    model_config = _STRICT

    user_id: UserId
    tip_id: TipId
    reward: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    features: CandidateFeaturesIn
    day_of_week: Day = 0


class OkOut(BaseModel):
    ok: bool


class RankIn(ScoreIn):
    """``/v1/rank``: the ``/score`` body plus an optional policy and event id."""

    policy: str | None = Field(
        None, max_length=POLICY_MAX_LENGTH, description="null: the active policy"
    )
    event_id: str | None = Field(
        None,
        max_length=MAX_EVENT_ID_LENGTH,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Your own id for this decision; generated when absent.",
    )


class RankedOut(BaseModel):
    tip_id: str
    score: float
    probability: float


class RankOut(BaseModel):
    event_id: str
    tip_id: str
    policy: str
    score: float
    probability: float
    ranking: list[RankedOut] = Field(
        description="Every candidate: the chosen one first, then by score, highest first."
    )


class FeedbackIn(BaseModel):
    """What the person did with the tip of ``event_id``; ``eventId``/``dwellMs`` also accepted."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

    event_id: str = Field(
        alias="eventId", min_length=1, max_length=MAX_EVENT_ID_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    action: Literal["done", "snooze", "dismiss"]
    dwell_ms: int | None = Field(None, alias="dwellMs", ge=0, le=MAX_DWELL_MS)


class FeedbackOut(BaseModel):
    event_id: str
    reward: float
    reward_milli: int
    reward_rule: str
    duplicate: bool


class LoggedCandidateOut(BaseModel):
    tip_id: str
    source: str
    source_id: str | None
    is_overdue: bool
    task_age_days: float
    priority: int
    content: str | None = Field(description="Only when the service keeps task texts.")
    features: list[float] = Field(description="What the serving policy's encoder made of it.")
    score: float
    probability: float | None = Field(description="null for legacy records.")
    expected_reward: float | None = Field(
        description="The serving model's θ·x when it decided (the score without an exploration "
        "bonus); null for legacy records and decisions logged before it was kept."
    )


class LoggedContextOut(BaseModel):
    hour_of_day: int
    day_of_week: int


class LoggedFeedbackOut(BaseModel):
    action: str | None
    dwell_ms: int | None
    reward: float
    reward_milli: int
    reward_rule: str
    origin: str = Field(description="client, legacy or default")
    applied: bool = Field(description="false when the user was reset after the decision")
    created: str


class ShadowDecisionOut(BaseModel):
    """What a shadow policy would have done with this decision; never shown to the user."""

    policy: str
    chosen_id: str = Field(description="The candidate the shadow drew.")
    score: float = Field(description="The shadow's score of the candidate it drew.")
    probability: float = Field(
        description="The shadow's probability of the candidate that was actually shown "
        "(its propensity, for off-policy evaluation)."
    )
    probabilities: list[float] = Field(description="The shadow's probability of each candidate.")
    expected_rewards: list[float] | None = Field(
        description="The shadow model's θ·x of each candidate; null if logged before it was kept."
    )


class DecisionOut(BaseModel):
    event_id: str
    user_id: str
    policy: str
    created: str
    created_ms: int
    origin: str = Field(description="rank, or legacy for an old-style reward's record")
    context: LoggedContextOut
    tip_id: str
    chosen: int
    score: float
    probability: float | None
    explored: bool
    seed: int
    model_updates: int
    candidates: list[LoggedCandidateOut]
    feedback: LoggedFeedbackOut | None
    shadows: list[ShadowDecisionOut] = Field(
        description="Shadow policies' decisions, by policy name (empty when none were set)."
    )
