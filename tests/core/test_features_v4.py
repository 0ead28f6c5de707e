"""v4: the source joins the candidate block, so it interacts with the time like the rest."""

from __future__ import annotations

import math

import numpy as np

from oo_ml import Candidate, Context, get_encoder

CONTEXT_LABELS = (
    "1",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "weekend",
    "morning",
    "evening",
)


def reference_row(context: Context, c: Candidate) -> list[float]:
    """v4 written out by hand from its documentation."""
    h, d = context.hour_of_day, context.day_of_week
    z = [1.0, math.sin(2 * math.pi * h / 24), math.cos(2 * math.pi * h / 24),
         math.sin(2 * math.pi * d / 7), math.cos(2 * math.pi * d / 7),
         float(d >= 5), float(5 <= h < 12), float(h >= 18)]  # fmt: skip
    age = c.task_age_days
    source = c.source.lower()
    block = [1.0, float(c.is_overdue), min(max(age, 0.0), 30.0) / 30.0, (c.priority - 1) / 3,
             min(max(-age, 0.0), 30.0) / 30.0, float(source == "todoist"),
             float(source == "calendar"), float(source == "email")]  # fmt: skip
    return [a * b + 0.0 for a in block for b in z]


def test_v4_is_the_outer_product_of_its_documented_blocks() -> None:
    encoder = get_encoder("v4")
    rng = np.random.default_rng(3)
    for hour in (0, 6, 8, 12, 18, 23):
        for day in (0, 4, 5, 6):
            context = Context(hour, day)
            sources = ["todoist", "Email", "CALENDAR", "slack"]
            candidates = [
                Candidate(
                    f"c{i}",
                    bool(rng.random() < 0.5),
                    float(rng.uniform(-45, 45)),
                    int(rng.integers(1, 5)),
                    str(rng.choice(sources)),
                )
                for i in range(6)
            ]
            got = encoder.encode(context, candidates)
            expected = np.array([reference_row(context, c) for c in candidates])
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_v4_labels_name_every_column_once() -> None:
    labels = get_encoder("v4").labels
    assert len(labels) == 64 == len(set(labels))
    assert labels[0] == "bias"
    assert "source=email*weekend" in labels
    assert "priority*morning" in labels


def test_v4_lets_the_weekend_change_which_source_wins() -> None:
    encoder = get_encoder("v4")
    theta = np.zeros(64)
    theta[encoder.labels.index("source=email")] = 1.0
    theta[encoder.labels.index("source=email*weekend")] = -2.0
    email, chore = Candidate("mail", source="email"), Candidate("chore", source="todoist")
    weekday = encoder.encode(Context(10, 2), [email, chore]) @ theta
    weekend = encoder.encode(Context(10, 6), [email, chore]) @ theta
    assert weekday.argmax() == 0
    assert weekend.argmax() == 1
