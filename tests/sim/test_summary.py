"""Run summaries: the numbers the comparison table prints, checked by hand."""

from __future__ import annotations

import random

import pytest

from oo_ml.sim.summary import SummaryBuilder, summarize, t_critical
from oo_ml.store.base import SimEvent


def event(policy: str, user: str, step: int, milli: int, chosen: float, *, oracle: float = 1.0,
          rand: float = 0.0, action: str = "done", persona: str = "p") -> SimEvent:  # fmt: skip
    return SimEvent("r", policy, user, step, persona, 9, 0, "t", 0.5, action, None, milli,
                    oracle, rand, chosen)  # fmt: skip


def test_normalized_score_is_zero_for_random_and_one_for_oracle() -> None:
    events = [event("rand", "u", s, 0, 0.0) for s in range(4)]
    events += [event("best", "u", s, 1000, 1.0) for s in range(4)]
    events += [event("half", "u", s, 500, 0.5) for s in range(4)]
    table = summarize(events, ["rand", "best", "half"])["policies"]
    assert table["rand"]["normalized"] == 0.0
    assert table["best"]["normalized"] == 1.0
    assert table["half"]["normalized"] == 0.5
    assert table["half"]["regret"] == pytest.approx(4 * 0.5)


def test_last_quarter_only_counts_the_last_quarter_of_steps() -> None:
    events = [event("p", "u", s, 0, 0.0 if s < 6 else 1.0) for s in range(8)]
    row = summarize(events, ["p"])["policies"]["p"]
    assert row["normalized_last_quarter"] == 1.0
    assert row["normalized"] == pytest.approx(2 / 8)


def test_confidence_interval_is_students_t_over_user_means() -> None:
    events = [event("p", "a", s, 1000, 1) for s in range(3)]
    events += [event("p", "b", s, 0, 1) for s in range(3)]
    events += [event("p", "c", s, 500, 1) for s in range(3)]
    low, high = summarize(events, ["p"])["policies"]["p"]["ci95"]
    # user means 1, 0, .5: sd .5, n 3, t(2) = 4.303 → half-width 4.303·.5/√3
    assert (high - low) / 2 == pytest.approx(4.303 * 0.5 / 3**0.5)
    assert (low + high) / 2 == pytest.approx(0.5)


def test_lift_is_relative_to_the_first_policy() -> None:
    # The old comparison: −0.548 vs −0.606 is "+10.7%" (well, +9.6% of |−0.606|).
    events = [event("linucb-v1", "u", 0, -606, 0.0), event("egreedy-v1", "u", 0, -548, 0.0)]
    table = summarize(events, ["linucb-v1", "egreedy-v1"])["policies"]
    assert table["linucb-v1"]["lift_pct"] == 0.0
    assert table["egreedy-v1"]["lift_pct"] == pytest.approx(100 * 58 / 606)


def test_difference_from_the_first_policy_pairs_each_user_with_themself() -> None:
    # Users far apart (means 0.9, 0.1, 0.5 under "a"), each exactly 0.1 better under "b":
    # the paired interval has no width, while the two rewards' own intervals overlap widely.
    means = {"u0": 900, "u1": 100, "u2": 500}
    events = [event("a", u, s, m, 0.5) for u, m in means.items() for s in range(4)]
    events += [event("b", u, s, m + 100, 0.5) for u, m in means.items() for s in range(4)]
    table = summarize(events, ["a", "b"])["policies"]
    assert table["a"]["difference"] is None
    assert table["a"]["difference_ci95"] is None
    assert table["b"]["difference"] == pytest.approx(0.1)
    assert table["b"]["difference_ci95"] == pytest.approx([0.1, 0.1])
    low, high = table["b"]["ci95"]
    assert low < table["a"]["mean_reward"] < high


def test_paired_difference_interval_is_students_t_over_per_user_differences() -> None:
    # Differences 0.3, 0.1, 0.2 (b − a per user): mean 0.2, sd 0.1, t(2) = 4.303.
    pairs = {"u0": (0, 300), "u1": (500, 600), "u2": (-200, 0)}
    events = [event("a", u, 0, a, 0.5) for u, (a, _) in pairs.items()]
    events += [event("b", u, 0, b, 0.5) for u, (_, b) in pairs.items()]
    events.append(event("b", "only-b", 0, 1000, 0.5))  # unpaired: left out of the difference
    row = summarize(events, ["a", "b"])["policies"]["b"]
    assert row["difference"] == pytest.approx(0.2)
    low, high = row["difference_ci95"]
    assert (high - low) / 2 == pytest.approx(4.303 * 0.1 / 3**0.5)


def test_no_shared_users_means_no_difference() -> None:
    events = [event("a", "u", 0, 0, 0.5), event("b", "v", 0, 1000, 0.5)]
    row = summarize(events, ["a", "b"])["policies"]["b"]
    assert row["difference"] is None


def test_action_shares_and_persona_table() -> None:
    events = [
        event("p", "u", 0, 1000, 1, action="done", persona="a"),
        event("p", "u", 1, 100, 0, action="snooze", persona="a"),
        event("p", "v", 0, -1000, 0, action="dismiss", persona="b"),
        event("p", "v", 1, -1000, 0, action="dismiss", persona="b"),
    ]
    summary = summarize(events, ["p"])
    assert summary["policies"]["p"]["actions"] == {"done": 0.25, "snooze": 0.25, "dismiss": 0.5}
    assert summary["personas"]["b"]["p"]["mean_reward"] == -1.0
    assert summary["personas"]["a"]["p"]["normalized"] == 0.5


def test_curve_has_oracle_and_random_references() -> None:
    events = [event("p", "u", s, 0, 0.25, oracle=0.5, rand=-0.5) for s in range(120)]
    curve = summarize(events, ["p"])["curve"]
    assert len(curve["steps"]) <= 50
    assert curve["series"]["p"][0] == 0.25
    assert curve["oracle"][0] == 0.5
    assert curve["random"][-1] == -0.5


def test_t_critical_values() -> None:
    assert t_critical(1) == 12.706
    assert t_critical(30) == 2.042
    assert t_critical(1000) == pytest.approx(1.962, abs=0.003)


def test_the_summary_does_not_depend_on_how_users_interleave_or_on_batches() -> None:
    """A run summarised batch by batch as it plays (step-major) equals its events summarised
    in the stores' order (policy, user, step), to the last bit: floats are added per user in
    step order, users in the order of their ids."""
    rng = random.Random(5)
    played = [
        event(
            policy, f"u{u}", step, rng.randrange(-1000, 1001), rng.uniform(-1, 1),
            oracle=rng.uniform(0, 1), rand=rng.uniform(-1, 0),
            action=rng.choice(["done", "snooze", "dismiss"]), persona=f"p{u % 3}",
        )
        for step in range(37)
        for policy in ("a", "b")
        for u in range(11)
    ]  # fmt: skip
    stored = sorted(played, key=lambda e: (e.policy, e.user_id, e.step))
    builder = SummaryBuilder(["a", "b"], 37)
    for start in range(0, len(played), 50):
        builder.add(played[start : start + 50])
    assert builder.result() == summarize(stored, ["a", "b"])
    assert summarize(played, ["a", "b"]) == summarize(stored, ["a", "b"])


def test_the_curve_adds_users_exactly() -> None:
    # Added as floats, 1e16 + 1 − 1e16 is 0; the curve's bucket sums are exact, so the mean of
    # these three users' expected rewards is 1/3, rounded once.
    values = {"u0": 1e16, "u1": 1.0, "u2": -1e16}
    events = [event("p", user, 0, 0, value) for user, value in values.items()]
    curve = summarize(events, ["p"])["curve"]
    assert curve["series"]["p"] == [1 / 3]
