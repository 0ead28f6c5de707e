"""Reading the decision log back: the rounds that off-policy evaluation and export work on.

A *round* is one logged decision with its feedback (``None`` while none has arrived). The log is
read in pages by ``(created_ms, event_id)`` so a long export neither holds one huge result in
memory nor skips or repeats a decision that shares a millisecond with another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from oo_ml.errors import ValidationError
from oo_ml.store.base import DecisionRecord, FeedbackRecord, Store, Txn

__all__ = ["END_OF_TIME_MS", "Round", "iter_rounds", "parse_time"]

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


_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time(text: str, now_ms: int, *, name: str = "since") -> int:
    """A point in time as milliseconds since the epoch, from what a person types on a command
    line: milliseconds (``1764000000000``), an ISO 8601 date or date-time (``2026-11-20``,
    ``2026-11-20T08:00:00+01:00``; without an offset it is UTC) or a duration ago (``90m``,
    ``12h``, ``7d``, ``2w``)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    ago = _AGO.match(text)
    if ago is not None:
        return now_ms - round(float(ago.group(1)) * _UNIT_MS[ago.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            name, f"{text!r} is not milliseconds, an ISO 8601 time or a duration like 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)
