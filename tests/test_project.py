"""The project's face: the README's commands and example, the public API, the command line."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import oo_ml
from oo_ml.cli import app
from oo_ml.sim.persona import FEATURES, load_persona
from oo_ml.types import Context

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    first_block = readme_blocks("bash")[0].strip().splitlines()
    assert len(first_block) == 2
    assert (ROOT / "README.md").read_text().index("```bash") < 20
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert first_block[1] in ci_lines


def test_readme_example_runs() -> None:
    namespace: dict[str, object] = {}
    exec(readme_blocks("python")[0], namespace)  # our own README
    assert namespace["reward"].value == 1.0  # type: ignore[attr-defined]
    assert namespace["bandit"].state.n_updates == 1  # type: ignore[attr-defined]


def test_public_api_is_exactly_all() -> None:
    public = {name for name in dir(oo_ml) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(oo_ml, name))}
    assert public - modules == set(oo_ml.__all__) - {"__version__"}
    for name in oo_ml.__all__:
        assert getattr(oo_ml, name) is not None


def test_commands_but_serve_do_not_load_the_web_stack() -> None:
    """Loading FastAPI, the console and uvicorn took 1.5 s of every command's start."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, oo_ml.cli; print(sorted(m for m in sys.modules"
         " if m.split('.')[0] in {'fastapi', 'uvicorn', 'starlette'} or m == 'oo_ml.api'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"


def test_cli_lists_every_registered_policy_as_json() -> None:
    result = CliRunner().invoke(app, ["policies", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [row["name"] for row in listed] == list(oo_ml.POLICIES)
    assert listed[0]["alpha"] == 1.0


def test_cli_policies_table_names_every_policy() -> None:
    result = CliRunner().invoke(app, ["policies"])
    assert result.exit_code == 0
    for name in oo_ml.POLICIES:
        assert name in result.output


def test_cli_shows_feature_labels_and_reward_table() -> None:
    runner = CliRunner()
    labels = json.loads(runner.invoke(app, ["features", "v2", "--json"]).output)["labels"]
    assert labels[-2:] == ["dow_sin", "dow_cos"]
    table = runner.invoke(app, ["rewards", "show", "dwell-v1"]).output
    assert "dismiss" in table
    assert "-1.0" in table


def test_cli_refuses_unknown_names_with_a_clear_message() -> None:
    result = CliRunner().invoke(app, ["rewards", "show", "dwell-v9"])
    assert result.exit_code == 2
    assert "unknown reward rule 'dwell-v9'" in result.output


def test_cli_errors_print_brackets_as_written(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Error text is printed as is, never read as rich markup: a message that says
    ``[from, to]`` keeps it."""
    monkeypatch.setenv("OO_ML_DATABASE_URL", f"sqlite:///{tmp_path}/runs.db")
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ndescription = "d"\n[[when]]\nhours = [3]\n')
    result = CliRunner().invoke(
        app, ["sim", "run", "--policy", "egreedy-v1", "--personas", str(path)], terminal_width=400
    )
    assert result.exit_code == 2
    assert "hours: must be [from, to], two hours of 0 … 23" in result.output
    assert not (tmp_path / "runs.db").exists()  # refused before a run was stored


def test_readme_persona_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "owl.toml"
    path.write_text(readme_blocks("toml")[0])
    persona = load_persona(path)
    assert persona.name == "night-owl"
    assert persona.awake == (10, 2)
    assert persona.prefer[FEATURES.index("source.email")] == -1.0
    priority = FEATURES.index("priority")
    assert persona.weights(Context(1, 2))[priority] == 0.5  # 01:00 is inside [21, 2]
    assert persona.weights(Context(12, 2))[priority] == 0.0
    assert persona.at_step(75).name == "evening-focused"
