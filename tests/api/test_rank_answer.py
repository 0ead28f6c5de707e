"""``rank_answer`` orders the ranking as documented: the chosen candidate first, then by
score, then by probability, highest first, ties in the candidates' order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml.api.routes.decisions import rank_answer
from oo_ml.store.base import DecisionRecord
from oo_ml.types import Candidate, Context

# Few distinct values, so that ties (and 0.0 against -0.0) are common.
_VALUES = st.sampled_from([-1.5, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0])


def _record(scores: list[float], probabilities: list[float], chosen: int) -> DecisionRecord:
    n = len(scores)
    return DecisionRecord(
        event_id="evt-1",
        user_id="u",
        policy="egreedy-v1",
        created_ms=0,
        context=Context(9, 2),
        candidates=tuple(Candidate(f"t{i}") for i in range(n)),
        source_ids=(None,) * n,
        features=np.zeros((n, 1)),
        scores=np.array(scores, dtype=float),
        probabilities=np.array(probabilities, dtype=float),
        chosen=chosen,
        seed=1,
        model_updates=0,
    )


@settings(max_examples=300)
@given(st.lists(st.tuples(_VALUES, _VALUES), min_size=1, max_size=12), st.data())
def test_the_ranking_is_the_chosen_one_then_by_score_then_probability(
    pairs: list[tuple[float, float]], data: st.DataObject
) -> None:
    chosen = data.draw(st.integers(0, len(pairs) - 1))
    scores = [s for s, _ in pairs]
    probabilities = [p for _, p in pairs]
    answer = rank_answer(_record(scores, probabilities, chosen))
    order = sorted(range(len(pairs)), key=lambda i: (i != chosen, -scores[i], -probabilities[i]))
    assert answer == {
        "event_id": "evt-1",
        "tip_id": f"t{chosen}",
        "policy": "egreedy-v1",
        "score": scores[chosen],
        "probability": probabilities[chosen],
        "ranking": [
            {"tip_id": f"t{i}", "score": scores[i], "probability": probabilities[i]} for i in order
        ],
    }
    assert list(answer) == ["event_id", "tip_id", "policy", "score", "probability", "ranking"]
    assert [repr(r["score"]) for r in answer["ranking"]] == [repr(scores[i]) for i in order]
