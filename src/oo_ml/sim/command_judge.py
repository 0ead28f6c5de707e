"""The ``command`` judge: runs an external program (e.g. an LLM command-line tool) per tip.

The program gets the prompt (:meth:`JudgeRequest.prompt`) on stdin and the same situation as
JSON in the ``OO_ML_JUDGE_REQUEST`` environment variable (:func:`request_json`), and prints
one reply on stdout, in the format and under the validation of the ``llm`` judge
(:func:`~oo_ml.sim.llm_judge.parse_judgement`). A non-zero exit, a timeout or an invalid reply
is retried; when every attempt fails the tip counts as dismissed, exactly as for the ``llm``
judge (see :mod:`oo_ml.sim.llm_judge`). No shell is involved: ``argv`` is run as given.

The program runs in its own process group (POSIX), and the whole group is killed on timeout,
so a tool that spawns helpers leaves none behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from oo_ml.errors import ConfigurationError
from oo_ml.sim.judges import WEEKDAYS, JudgeRequest
from oo_ml.sim.llm_judge import _AttemptError, _RetryingJudge, _short

__all__ = ["REQUEST_ENV", "CommandJudge", "request_json"]

REQUEST_ENV = "OO_ML_JUDGE_REQUEST"
"""Environment variable holding :func:`request_json` for the program."""

_DRAIN_SECONDS = 5.0


def request_json(request: JudgeRequest) -> dict[str, Any]:
    """The situation as plain data, for programs that would rather not parse the prompt."""
    task, context = request.task, request.context
    return {
        "step": request.step,
        "persona": {"name": request.persona.name, "description": request.persona.description},
        "context": {
            "hour_of_day": context.hour_of_day,
            "day_of_week": context.day_of_week,
            "weekday": WEEKDAYS[context.day_of_week],
        },
        "task": {
            "id": task.id,
            "content": task.content,
            "category": task.category,
            "source": task.source,
            "priority": task.priority,
            "due_in_days": task.due_in_days,
            "is_overdue": task.is_overdue,
        },
        "prompt": request.prompt(),
    }


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


class CommandJudge(_RetryingJudge):
    """Runs ``argv`` once per tip (plus retries); ``timeout_s`` bounds each run."""

    name = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60,
        retries: int = 1,
        backoff_s: float = 0.5,
        max_consecutive_failures: int = 5,
    ) -> None:
        super().__init__(
            retries=retries,
            backoff_s=backoff_s,
            max_consecutive_failures=max_consecutive_failures,
        )
        if isinstance(argv, str):
            raise ConfigurationError("argv must be a sequence of arguments, not one string")
        self.argv = tuple(str(arg) for arg in argv)
        if not self.argv or not self.argv[0]:
            raise ConfigurationError("the judge command is empty")
        if shutil.which(self.argv[0]) is None:
            raise ConfigurationError(f"judge command {self.argv[0]!r} not found or not executable")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigurationError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)

    def _ask(self, request: JudgeRequest, previous: tuple[str, str] | None) -> str:
        env = {**os.environ, REQUEST_ENV: json.dumps(request_json(request))}
        program = self.argv[0]
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigurationError(f"cannot run judge command {program!r}: {exc}") from None
        with process:
            try:
                stdout, stderr = process.communicate(
                    request.prompt().encode(), timeout=self.timeout_s
                )
            except subprocess.TimeoutExpired:
                _kill_group(process)
                # A helper that left the group could hold the pipes open: don't wait forever.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.communicate(timeout=_DRAIN_SECONDS)
                raise _AttemptError(
                    f"{program} did not finish within {self.timeout_s:g} s and was killed"
                ) from None
        if process.returncode != 0:
            raise _AttemptError(
                f"{program} exited with status {process.returncode}: "
                f"{_short(stderr.decode(errors='replace')[-2000:])}"
            )
        return stdout.decode(errors="replace")
