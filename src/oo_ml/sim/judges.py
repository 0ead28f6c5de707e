"""Judges decide what a simulated person does with a tip.

Every judge answers one question — given this persona, this moment and this task, what does the
person do (done / snooze / dismiss) and, if done, for how long — through one method,
:meth:`Judge.judge`. ``rule`` samples the persona's own response model (fast, deterministic for
a seed); ``llm`` asks any OpenAI-compatible chat-completions endpoint; ``command`` runs an
external program. :func:`make_judge` builds one by name from the settings.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from oo_ml.errors import ConfigurationError, NotFoundError
from oo_ml.sim.persona import Persona
from oo_ml.sim.tasks import SimTask
from oo_ml.types import Action, Context

if TYPE_CHECKING:
    from oo_ml.settings import Settings

__all__ = ["JUDGES", "WEEKDAYS", "Judge", "JudgeRequest", "Judgement", "RuleJudge", "make_judge"]

JUDGES = ("rule", "llm", "command")

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """One tip shown to one simulated person. ``persona`` is the one in force at ``step``."""

    persona: Persona
    context: Context
    task: SimTask
    step: int

    def prompt(self) -> str:
        """A plain-language description of the situation, for LLM and command judges."""
        t = self.task
        if t.is_overdue:
            due = f"overdue by {t.age_days:.1f} days"
        elif t.due_in_days < 1:
            due = "due today"
        else:
            due = f"due in {t.due_in_days:.1f} days"
        return (
            f"You are role-playing this person: {self.persona.description}\n"
            f"It is {WEEKDAYS[self.context.day_of_week]}, {self.context.hour_of_day:02d}:00.\n"
            f'Your productivity app suggests one task: "{t.content}" '
            f"(from {t.source}, priority {t.priority} of 4 where 4 is most urgent, {due}).\n"
            "What do you do? Answer with JSON only: "
            '{"action": "done" | "snooze" | "dismiss", "dwell_seconds": <seconds spent if done, '
            "else null>}"
        )


@dataclass(frozen=True, slots=True)
class Judgement:
    action: Action
    dwell_ms: int | None


_SNOOZED = Judgement(Action.SNOOZE, None)
_DISMISSED = Judgement(Action.DISMISS, None)


class Judge(Protocol):
    name: str

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        """What the person does. ``rng`` is this step's generator (common random numbers)."""


class RuleJudge:
    """Samples the persona's response model: exact, fast, deterministic for a seed."""

    name = "rule"

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        return self.answer(request, float(rng.random()), lambda: rng)

    @staticmethod
    def answer(
        request: JudgeRequest, u: float, then: Callable[[], np.random.Generator]
    ) -> Judgement:
        """The verdict for the step's first uniform ``u``; ``then`` gives the step's generator
        just after that number, for a done task's dwell (asked for only then)."""
        persona = request.persona
        return RuleJudge.verdict(
            persona, persona.done_probability(request.task, request.context), u, then
        )

    @staticmethod
    def verdict(
        persona: Persona, done: float, u: float, then: Callable[[], np.random.Generator]
    ) -> Judgement:
        """:meth:`answer` for a task that ``persona`` does with probability ``done``."""
        if u < done:
            return Judgement(Action.DONE, persona.sample_dwell_ms(then()))
        if u < done + (1.0 - done) * persona.response.snooze_share:
            return _SNOOZED
        return _DISMISSED


def make_judge(name: str, settings: Settings) -> Judge:
    """The judge called ``name`` (one of :data:`JUDGES`), configured from ``settings``.

    ``llm`` needs ``OO_ML_LLM_BASE_URL`` and ``OO_ML_LLM_MODEL``; an empty
    ``OO_ML_LLM_CACHE_DIR`` turns its cache off, and it holds an HTTP connection pool, so call
    its ``close()`` when the run ends. ``command`` needs ``OO_ML_JUDGE_COMMAND``.
    """
    # llm_judge and command_judge import this module, so they are imported here, on demand.
    if name == "rule":
        return RuleJudge()
    if name == "llm":
        base_url, model = settings.llm_base_url, settings.llm_model
        if not base_url or not model:
            missing = [
                variable
                for variable, value in (
                    ("OO_ML_LLM_BASE_URL", base_url),
                    ("OO_ML_LLM_MODEL", model),
                )
                if not value
            ]
            raise ConfigurationError(f"the llm judge needs {' and '.join(missing)} to be set")
        from oo_ml.sim.llm_judge import LLMJudge  # noqa: PLC0415 (import cycle)

        key = settings.llm_api_key
        return LLMJudge(
            base_url,
            model,
            None if key is None else key.get_secret_value(),
            timeout_s=settings.llm_timeout_seconds,
            cache_dir=settings.llm_cache_dir or None,
        )
    if name == "command":
        if not settings.judge_command:
            raise ConfigurationError(
                "the command judge needs OO_ML_JUDGE_COMMAND to be set, e.g. 'llm -m gpt-4o-mini'"
            )
        from oo_ml.sim.command_judge import CommandJudge  # noqa: PLC0415 (import cycle)

        return CommandJudge(shlex.split(settings.judge_command))
    raise NotFoundError(f"unknown judge {name!r}; known: {', '.join(JUDGES)}")
