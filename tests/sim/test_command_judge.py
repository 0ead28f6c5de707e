"""The ``command`` judge running real programs: small Python scripts written to ``tmp_path``."""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from oo_ml.errors import ConfigurationError
from oo_ml.settings import Settings
from oo_ml.sim.command_judge import REQUEST_ENV, CommandJudge, request_json
from oo_ml.sim.judges import Judgement, JudgeRequest, make_judge
from oo_ml.sim.llm_judge import FALLBACK, JudgeError
from oo_ml.sim.persona import shipped_personas
from oo_ml.sim.tasks import SimTask
from oo_ml.types import Action, Context

DONE_45 = Judgement(Action.DONE, 45_000)

# Answers from the prompt on stdin; checks the environment variable carries the same request.
ANSWERING = """
    import json, os, sys
    prompt = sys.stdin.read()
    request = json.loads(os.environ["OO_ML_JUDGE_REQUEST"])
    assert request["prompt"] == prompt, "stdin and OO_ML_JUDGE_REQUEST disagree"
    if request["task"]["priority"] == 4 and "priority 4 of 4" in prompt:
        print(json.dumps({"action": "done", "dwell_seconds": 45}))
    else:
        print("```json")
        print(json.dumps({"action": "dismiss", "dwell_seconds": None}))
        print("```")
"""


def make_request(priority: int = 4, step: int = 0) -> JudgeRequest:
    task = SimTask("u1-t1", "Draft the quarterly report", "work", "todoist", priority, 2.0)
    return JudgeRequest(shipped_personas()["morning-focused"], Context(9, 1), task, step)


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def program(tmp_path: Path, source: str, name: str = "judge.py") -> list[str]:
    """argv running ``source`` (dedented) with this interpreter."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return [sys.executable, str(path)]


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie nobody has reaped yet counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def test_answers_from_the_prompt_on_stdin(tmp_path: Path) -> None:
    judge = CommandJudge(program(tmp_path, ANSWERING), backoff_s=0.0)
    assert judge.name == "command"
    assert judge.judge(make_request(priority=4), rng()) == DONE_45
    assert judge.judge(make_request(priority=2), rng()) == Judgement(Action.DISMISS, None)
    assert judge.stats.calls == 2
    assert (judge.stats.invalid_replies, judge.stats.retries, judge.stats.failures) == (0, 0, 0)


def test_request_json_describes_the_situation() -> None:
    request = make_request(step=7)
    data = request_json(request)
    assert data["step"] == 7
    assert data["persona"]["name"] == "morning-focused"
    assert data["context"] == {"hour_of_day": 9, "day_of_week": 1, "weekday": "Tuesday"}
    assert data["task"]["priority"] == 4
    assert data["task"]["is_overdue"] is False
    assert data["prompt"] == request.prompt()
    assert json.loads(json.dumps(data)) == data


def test_the_program_sees_the_request_in_its_environment(tmp_path: Path) -> None:
    source = f"""
        import json, os
        request = json.loads(os.environ[{REQUEST_ENV!r}])
        print(json.dumps({{"action": "done", "dwell_seconds": request["step"]}}))
    """
    judge = CommandJudge(program(tmp_path, source))
    assert judge.judge(make_request(step=12), rng()) == Judgement(Action.DONE, 12_000)


def test_invalid_output_is_counted_and_retried_then_falls_back(tmp_path: Path) -> None:
    judge = CommandJudge(program(tmp_path, "print('I would do it right away!')"), backoff_s=0.0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.invalid_replies, judge.stats.retries, judge.stats.failures) == (2, 1, 1)


def test_a_non_zero_exit_is_a_failed_attempt_even_with_a_valid_reply(tmp_path: Path) -> None:
    source = """
        import sys
        print('{"action": "done", "dwell_seconds": 45}')
        sys.exit(3)
    """
    judge = CommandJudge(program(tmp_path, source), retries=0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.invalid_replies, judge.stats.failures) == (0, 1)


def test_a_failed_run_is_retried(tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    source = f"""
        import pathlib, sys
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.touch()
            sys.exit("first run fails")
        print('{{"action": "done", "dwell_seconds": 45}}')
    """
    judge = CommandJudge(program(tmp_path, source), retries=1, backoff_s=0.0)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.retries, judge.stats.failures) == (1, 0)


def test_a_program_past_its_timeout_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    source = f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        time.sleep(60)
    """
    judge = CommandJudge(program(tmp_path, source), timeout_s=0.2, retries=0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.failures, judge.stats.invalid_replies) == (1, 0)
    if pid_file.exists():  # absent only if the interpreter had not even started by then
        assert is_gone(int(pid_file.read_text()))


def test_a_timeout_kills_the_programs_helpers_too(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The helper inherits stdout: if it survived, the judge could not finish reading.
    source = f"""
        import os, pathlib, subprocess, sys, time
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path({str(pids)!r}).write_text(f"{{os.getpid()}} {{helper.pid}}")
        time.sleep(60)
    """
    # Long enough for two interpreters to start on a loaded machine; the outcome is all we check.
    judge = CommandJudge(program(tmp_path, source), timeout_s=1.0, retries=0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    program_pid, helper_pid = (int(p) for p in pids.read_text().split())
    assert is_gone(program_pid)
    # The helper is not our child: its new parent reaps it when it gets round to it.
    for _ in range(200):
        if is_gone(helper_pid):
            break
        time.sleep(0.01)
    assert is_gone(helper_pid)


def test_too_many_failures_in_a_row_raise(tmp_path: Path) -> None:
    judge = CommandJudge(program(tmp_path, "raise SystemExit(1)"), retries=0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    judge.max_consecutive_failures = 2
    with pytest.raises(JudgeError, match="command judge: 2 judgements in a row failed"):
        judge.judge(make_request(), rng())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the judge command is empty"),
        ([""], "the judge command is empty"),
        (["oo-ml-no-such-judge-program"], "'oo-ml-no-such-judge-program' not found"),
        ("python judge.py", "a sequence of arguments, not one string"),
    ],
)
def test_refuses_a_command_that_cannot_run(argv: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CommandJudge(argv)


def test_refuses_a_timeout_that_is_not_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="timeout_s must be a positive number"):
        CommandJudge(program(tmp_path, ""), timeout_s=0)


def test_a_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "judge.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    os.chmod(script, 0o644)
    with pytest.raises(ConfigurationError, match="not found or not executable"):
        CommandJudge([str(script)])


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_make_judge_splits_the_command_like_a_shell_without_one(tmp_path: Path) -> None:
    spaced = tmp_path / "with space"
    spaced.mkdir()
    command = shlex.join(program(spaced, ANSWERING))
    judge = make_judge("command", settings(judge_command=command))
    assert isinstance(judge, CommandJudge)
    assert judge.argv == (sys.executable, str(spaced / "judge.py"))
    assert judge.judge(make_request(), rng()) == DONE_45


def test_make_judge_command_needs_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="needs OO_ML_JUDGE_COMMAND to be set"):
        make_judge("command", settings())


@pytest.mark.parametrize("command", ["llm 'unbalanced", "   "])
def test_settings_refuse_a_command_that_does_not_split(command: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="OO_ML_JUDGE_COMMAND"):
        settings(judge_command=command)
