"""The memory store's bounded decision log (``MemoryStore(decision_limit=…)``)."""

from __future__ import annotations

import numpy as np
import pytest

from oo_ml.store.base import ShadowRecord
from oo_ml.store.memory import MemoryStore

from .test_store_contract import decision, feedback, trained_row


def shadow(event_id: str) -> ShadowRecord:
    return ShadowRecord(event_id, "ucb-ix1", np.zeros(3), np.full(3, 1 / 3), 0, 0)


def test_the_oldest_decisions_are_forgotten_with_their_feedback_and_shadows() -> None:
    store = MemoryStore(decision_limit=3)
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row()))
    for i in range(6):
        user = f"u{i % 2}"
        event = f"e{i}"

        def job(t, event: str = event, user: str = user, i: int = i) -> None:  # type: ignore[no-untyped-def]
            t.insert_decision(decision(event, user_id=user, created_ms=1_000 + i))
            t.insert_feedback(feedback(event, user_id=user))
            t.insert_shadows([shadow(event)])

        store.write(job)
    # Forgetting happens before each job: the newest three are left, whole.
    kept = store.read(lambda t: [e for e in (f"e{i}" for i in range(6)) if t.get_decision(e)])
    assert kept == ["e3", "e4", "e5"]
    for event in ("e0", "e1", "e2"):
        assert store.read(lambda t, e=event: t.get_feedback(e)) is None
        assert store.read(lambda t, e=event: t.shadows_for([e])) == {event: []}
    for event in kept:
        assert store.read(lambda t, e=event: t.get_feedback(e)) is not None
        assert len(store.read(lambda t, e=event: t.shadows_for([e]))[event]) == 1
    recent = store.read(lambda t: t.recent_decisions("u1", 10))
    assert [d.event_id for d in recent] == ["e5", "e3"]
    assert store.read(lambda t: t.load_state("u1", "ucb-ix1")) is not None  # models stay


def test_a_failing_job_keeps_what_it_found_and_undoes_only_itself() -> None:
    store = MemoryStore(decision_limit=2)
    for i in range(2):
        store.write(lambda t, i=i: t.insert_decision(decision(f"e{i}", created_ms=1_000 + i)))

    def failing(t) -> None:  # type: ignore[no-untyped-def]
        t.insert_decision(decision("e2", created_ms=1_002))
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        store.write(failing)
    ids = store.read(lambda t: [d.event_id for d in t.recent_decisions("u1", 10)])
    assert ids == ["e1", "e0"]


def test_no_limit_keeps_everything_and_a_bad_limit_is_refused() -> None:
    store = MemoryStore()
    for i in range(50):
        store.write(lambda t, i=i: t.insert_decision(decision(f"e{i}", created_ms=i)))
    assert len(store.read(lambda t: t.recent_decisions("u1", 100))) == 50
    with pytest.raises(ValueError, match="decision_limit"):
        MemoryStore(decision_limit=0)
