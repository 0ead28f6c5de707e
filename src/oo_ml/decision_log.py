"""Reading the decision log back: the rounds that off-policy evaluation and export work on.

A *round* is one logged decision with its feedback (``None`` while none has arrived). The log is
read in pages by ``(created_ms, event_id)`` so a long export neither holds one huge result in
memory nor skips or repeats a decision that shares a millisecond with another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from oo_ml.errors import ValidationError
from oo_ml.store.base import DecisionRecord, FeedbackRecord, Store, Txn

__all__ = ["END_OF_TIME_MS", "Round", "iter_rounds"]

Round = tuple[DecisionRecord, FeedbackRecord | None]

END_OF_TIME_MS = 2**62
"""An ``until`` later than any decision's time."""


def iter_rounds(
    store: Store,
    *,
    since_ms: int = 0,
    until_ms: int = END_OF_TIME_MS,
    policies: Sequence[str] | None = None,
    page: int = 1000,
) -> Iterator[Round]:
    """Every decision made in ``[since_ms, until_ms)``, oldest first, with its feedback.

    Each page is its own read, so writers are never blocked for the length of an export.
    """
    if since_ms < 0 or until_ms < since_ms:
        raise ValidationError("since", "must be a time at or before 'until'")
    if page < 1:
        raise ValidationError("page", "must be at least 1")
    after: tuple[int, str] | None = None
    while True:

        def job(txn: Txn, after: tuple[int, str] | None = after) -> Sequence[Round]:
            return txn.logged_rounds(since_ms, until_ms, after=after, limit=page, policies=policies)

        rounds = store.read(job)
        yield from rounds
        if len(rounds) < page:
            return
        last = rounds[-1][0]
        after = (last.created_ms, last.event_id)
