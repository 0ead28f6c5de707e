"""Versioned reward rules: a raw :class:`~oo_ml.types.Outcome` in, a reward out.

A rule is data — per action, a table of dwell-time bands — so a new version is a new table
registered under a new name, and callers only ever name the rule. Rewards are held in integer
thousandths (``reward_milli``) so that logs, sums and comparisons are exact.

``dwell-v1`` is the existing service's table:

=========  ==========================  ======
action     dwell                       reward
=========  ==========================  ======
dismiss    any                         −1.0
snooze     any                         +0.1
done       < 15 s                      −0.3
done       15 s ≤ dwell < 2 min        +1.0
done       2 min ≤ dwell < 10 min      +0.6
done       ≥ 10 min                    +0.3
done       not measured                +0.6
=========  ==========================  ======

"done" without a dwell time (an older client, or a task completed elsewhere) scores +0.6: it is
a real completion, so it must rank above snooze, but without a dwell we cannot tell a focused
session (+1.0) from a click-through (−0.3); +0.6 is the value the table gives an ordinary
completed session, and it never outranks what a measured good session earns.

>>> get_reward_rule("dwell-v1").score(Outcome(Action.DONE, 30_000))
Reward(milli=1000, rule='dwell-v1')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oo_ml.errors import (
    ConfigurationError,
    RegistryError,
    UnknownRewardRuleError,
    ValidationError,
)
from oo_ml.types import Action, Outcome, Reward

__all__ = [
    "DEFAULT_REWARD_RULE",
    "REWARD_RULES",
    "ActionRule",
    "DwellBand",
    "RewardRule",
    "get_reward_rule",
    "register_reward_rule",
]


@dataclass(frozen=True, slots=True)
class DwellBand:
    """Dwell times in ``[from_ms, until_ms)`` earn ``milli`` (``until_ms=None``: no upper end)."""

    from_ms: int
    until_ms: int | None
    milli: int


@dataclass(frozen=True, slots=True)
class ActionRule:
    """The reward of one action: by dwell band, or ``unmeasured_milli`` when there is no dwell.

    ``bands`` must start at 0 and tile the dwell axis without gaps or overlaps.
    """

    bands: tuple[DwellBand, ...]
    unmeasured_milli: int

    def __post_init__(self) -> None:
        expected_start = 0
        for i, band in enumerate(self.bands):
            if band.from_ms != expected_start:
                raise ConfigurationError(
                    f"band {i} starts at {band.from_ms}, expected {expected_start}"
                )
            if band.until_ms is None:
                if i != len(self.bands) - 1:
                    raise ConfigurationError(f"band {i} is open-ended but is not the last")
            elif band.until_ms <= band.from_ms:
                raise ConfigurationError(f"band {i} is empty")
            else:
                expected_start = band.until_ms
        if not self.bands or self.bands[-1].until_ms is not None:
            raise ConfigurationError("the last band must be open-ended")

    @classmethod
    def flat(cls, milli: int) -> ActionRule:
        """The same reward whatever the dwell."""
        return cls((DwellBand(0, None, milli),), milli)

    def milli_for(self, dwell_ms: int | None) -> int:
        if dwell_ms is None:
            return self.unmeasured_milli
        for band in self.bands:
            if band.until_ms is None or dwell_ms < band.until_ms:
                return band.milli
        raise AssertionError("bands are validated to be open-ended")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class RewardRule:
    """A named, frozen mapping from outcome to reward."""

    name: str
    actions: Mapping[Action, ActionRule]
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # A private read-only copy: a published rule must not change behind its name.
        object.__setattr__(self, "actions", MappingProxyType(dict(self.actions)))
        missing = set(Action) - set(self.actions)
        if missing:
            raise ConfigurationError(f"rule {self.name!r} has no entry for {sorted(missing)}")

    def score(self, outcome: Outcome) -> Reward:
        """The reward this rule gives ``outcome``."""
        if not isinstance(outcome, Outcome):
            raise ValidationError("outcome", f"must be an Outcome, got {type(outcome).__name__}")
        return Reward(self.milli_of(outcome.action, outcome.dwell_ms), self.name)

    def milli_of(self, action: Action, dwell_ms: int | None) -> int:
        """:meth:`score`'s reward in thousandths, for an action and dwell already checked as
        an :class:`Outcome` checks them (a simulated judge's verdict)."""
        return self.actions[action].milli_for(dwell_ms)

    def table(self) -> list[tuple[str, str, float]]:
        """Rows of (action, dwell range, reward) for display."""
        rows: list[tuple[str, str, float]] = []
        for action, rule in self.actions.items():
            for band in rule.bands:
                if len(rule.bands) == 1:
                    span = "any"
                elif band.until_ms is None:
                    span = f"≥ {band.from_ms} ms"
                else:
                    span = f"{band.from_ms} ≤ ms < {band.until_ms}"
                rows.append((action.value, span, band.milli / 1000))
            if len(rule.bands) > 1:
                rows.append((action.value, "not measured", rule.unmeasured_milli / 1000))
        return rows


REWARD_RULES: dict[str, RewardRule] = {}
"""Every published reward rule by name. A name is never reused for a different table."""


def register_reward_rule(rule: RewardRule) -> RewardRule:
    """Publish ``rule``; refuses a name that is taken."""
    if rule.name in REWARD_RULES:
        raise RegistryError(f"reward rule {rule.name!r} is already registered")
    REWARD_RULES[rule.name] = rule
    return rule


def get_reward_rule(name: str) -> RewardRule:
    """The reward rule published as ``name``."""
    try:
        return REWARD_RULES[name]
    except KeyError:
        known = ", ".join(sorted(REWARD_RULES))
        raise UnknownRewardRuleError(f"unknown reward rule {name!r}; known: {known}") from None


_SECOND = 1000
_MINUTE = 60 * _SECOND

DEFAULT_REWARD_RULE = register_reward_rule(
    RewardRule(
        name="dwell-v1",
        description="The existing service's dwell-time table (seed commit faf44c18fc).",
        actions={
            Action.DISMISS: ActionRule.flat(-1000),
            Action.SNOOZE: ActionRule.flat(100),
            Action.DONE: ActionRule(
                bands=(
                    DwellBand(0, 15 * _SECOND, -300),
                    DwellBand(15 * _SECOND, 2 * _MINUTE, 1000),
                    DwellBand(2 * _MINUTE, 10 * _MINUTE, 600),
                    DwellBand(10 * _MINUTE, None, 300),
                ),
                unmeasured_milli=600,
            ),
        },
    )
)
