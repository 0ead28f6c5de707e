"""``oo-ml``: the command line of the service."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import make_url

from oo_ml.engine import Engine
from oo_ml.errors import NotFoundError, OOMLError
from oo_ml.features import ENCODERS, get_encoder
from oo_ml.ope.evaluation import Evaluation, evaluate_many
from oo_ml.ope.export import FORMATS, export_log
from oo_ml.ope.log import END_OF_TIME_MS, parse_time
from oo_ml.policies import POLICIES, get_policy
from oo_ml.rewards import REWARD_RULES, get_reward_rule
from oo_ml.runtime import freeze_startup_heap
from oo_ml.settings import Settings, engine_config
from oo_ml.sim.judges import make_judge
from oo_ml.sim.persona import load_personas, persona_data, shipped_personas
from oo_ml.sim.report import (
    curve_svg,
    judge_text,
    persona_table,
    persona_text,
    personas_table,
    summary_table,
)
from oo_ml.sim.runner import DEFAULT_STEPS, DEFAULT_USERS, HttpClient, SimConfig, SimRunner
from oo_ml.store.base import RunRecord
from oo_ml.store.migrate import head_revision, upgrade
from oo_ml.store.sql import SqlStore

app = typer.Typer(
    name="oo-ml",
    help="oO ML: the contextual-bandit service that picks the tip oO shows.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _refuse(exc: Exception) -> NoReturn:
    """Bad input: its message in red (as written: brackets are not markup), exit status 2."""
    console.print(f"[red]{escape(str(exc))}[/red]")
    raise typer.Exit(2) from None


@app.command()
def policies(as_json: JsonOption = False) -> None:
    """List the registered policies with their hyper-parameters."""
    if as_json:
        rows = [
            {"name": p.name, "description": p.description, **p.params()} for p in POLICIES.values()
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Registered policies")
    table.add_column("name", no_wrap=True)
    for column in ("encoder", "d", "exploration", "parameters", "description"):
        table.add_column(column)
    for policy in POLICIES.values():
        params = policy.params()
        shown = {k: v for k, v in params.items() if k not in {"encoder", "dim", "exploration"}}
        table.add_row(
            policy.name,
            policy.encoder.name,
            str(policy.dim),
            params["exploration"],
            "\n".join(f"{k}={v}" for k, v in shown.items()),
            policy.description,
        )
    console.print(table)


@app.command()
def features(
    encoder: Annotated[str, typer.Argument(help="Encoder name.")] = "v3",
    as_json: JsonOption = False,
) -> None:
    """Show an encoder's feature labels in column order."""
    try:
        chosen = get_encoder(encoder)
    except NotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="encoder") from None
    if as_json:
        typer.echo(json.dumps({"encoder": chosen.name, "labels": list(chosen.labels)}))
        return
    table = Table(title=f"Encoder {chosen.name} (d={chosen.dim}); all: {', '.join(ENCODERS)}")
    table.add_column("#", justify="right")
    table.add_column("label")
    for i, label in enumerate(chosen.labels):
        table.add_row(str(i), label)
    console.print(table)


rewards_app = typer.Typer(help="Reward rules and default rewards.", no_args_is_help=True)
app.add_typer(rewards_app, name="rewards")
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@rewards_app.command("show")
def rewards_show(
    rule: Annotated[str, typer.Argument(help="Reward rule name.")] = "dwell-v1",
) -> None:
    """Show a reward rule's table."""
    try:
        chosen = get_reward_rule(rule)
    except NotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="rule") from None
    table = Table(title=f"Reward rule {chosen.name}; all: {', '.join(REWARD_RULES)}")
    for column in ("action", "dwell", "reward"):
        table.add_column(column)
    for action, span, value in chosen.table():
        table.add_row(action, span, f"{value:+.1f}")
    console.print(table)


@rewards_app.command("settle")
def rewards_settle() -> None:
    """Give the default reward to decisions that waited longer than the reward wait time."""
    settings = _settings()
    upgrade(settings.database_url)
    store = SqlStore(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        settled = Engine(store, engine_config(settings)).settle()
    finally:
        store.close()
    console.print(f"settled {settled} decisions with reward {settings.default_reward:+.3f}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema of OO_ML_DATABASE_URL to the newest revision."""
    settings = _settings()
    upgrade(settings.database_url)
    console.print(f"{_redact(settings.database_url)} is at revision {head_revision()}")


def _settings() -> Settings:
    try:
        return Settings()
    except PydanticValidationError as exc:
        console.print(f"[red]invalid settings:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Run the service (API and console). Migrates the database first."""
    settings = _settings()
    if settings.admin_token is None:
        token = secrets.token_urlsafe(24)
        os.environ["OO_ML_ADMIN_TOKEN"] = token
        console.print(f"No OO_ML_ADMIN_TOKEN set; generated one for this run: [bold]{token}[/bold]")
    upgrade(settings.database_url)
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    console.print(
        f"oO ML on {base} — database {_redact(settings.database_url)}, {workers} worker(s)"
    )
    console.print(f"  API docs: {base}/docs")
    console.print(f"  console:  {base}/admin (sign in with the admin token)")
    from oo_ml.serve import run_server  # noqa: PLC0415 (the web stack is for this command only)

    run_server(host, port, workers, settings.log_level)


sim_app = typer.Typer(
    help="Offline simulation: personas, task streams, judges.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")

PersonasOption = Annotated[
    str,
    typer.Option(help="Comma-separated shipped persona names or .toml paths; 'all' = shipped."),
]
UsersOption = Annotated[int, typer.Option(min=1, help="Simulated users per policy.")]
StepsOption = Annotated[int, typer.Option(min=1, help="Tips per simulated user.")]
JudgeOption = Annotated[str, typer.Option(help="rule, llm or command.")]
SeedOption = Annotated[int, typer.Option(help="Seed: same seed, same numbers.")]
UrlOption = Annotated[
    str | None, typer.Option(help="Run against a service over HTTP instead of in-process.")
]
PlotOption = Annotated[Path | None, typer.Option(help="Write the reward curves to this SVG.")]
ThroughEngineOption = Annotated[
    bool,
    typer.Option(
        "--through-engine",
        help="In this process, make every decision through the serving engine, as a service "
        "does (slower; the same numbers).",
    ),
]


def _simulate(
    policies: list[str],
    *,
    personas: str,
    users: int,
    steps: int,
    judge: str,
    seed: int,
    url: str | None,
    plot: Path | None,
    through_engine: bool,
) -> None:
    settings = _settings()
    names = list(shipped_personas()) if personas == "all" else personas.split(",")
    try:
        config = SimConfig(tuple(policies), tuple(names), users, steps, judge=judge, seed=seed)
        config = config.with_files_defined()  # refused here, before a run is stored
        judge_impl = make_judge(judge, settings)
    except (OOMLError, ValueError) as exc:
        _refuse(exc)
    upgrade(settings.database_url)
    store = SqlStore(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    api_token = settings.api_token.get_secret_value() if settings.api_token else None

    def http_client(_: SimConfig) -> HttpClient:
        assert url is not None
        return HttpClient(url, api_token, concurrency=settings.sim_http_concurrency)

    freeze_startup_heap()  # a run allocates a record per step; see freeze_startup_heap
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("simulating", total=config.total_steps)
            runner = SimRunner(
                store,
                judge=judge_impl,
                client_factory=http_client if url else None,
                direct=not through_engine,
                progress=lambda done, _total: bar.update(task, completed=done),
                judge_concurrency=settings.judge_concurrency,
                live_every_s=settings.sim_live_seconds,
            )
            run = runner.run(config)
    finally:
        store.close()
        close = getattr(judge_impl, "close", None)
        if close is not None:
            close()
    _report(run, plot)


def _report(run: RunRecord, plot: Path | None) -> None:
    if run.status == "failed":
        console.print(f"[red]run {run.run_id} failed:[/red] {escape(str(run.error))}")
        raise typer.Exit(1)
    console.print(summary_table(run))
    by_persona = persona_table(run)
    if by_persona is not None:
        console.print(by_persona)
    judged = judge_text(run)
    if judged is not None:
        console.print(f"judge {run.config.get('judge')}: {judged}")
    definitions = run.config.get("persona_definitions") or []
    if definitions:
        names = [str(d.get("name")) for d in definitions]
        console.print("Personas defined with the run:")
        try:
            for persona in load_personas(names, definitions):
                console.print(persona_text(persona))
        except OOMLError as exc:  # stored by another version, say
            console.print(f"[red]{escape(str(exc))}[/red]")
    if plot is not None and run.summary is not None:
        plot.write_text(curve_svg(run))
        console.print(f"reward curves written to {plot}")


@sim_app.command("run")
def sim_run(
    policy: Annotated[str, typer.Option(help="Policy to simulate.")],
    personas: PersonasOption = "all",
    users: UsersOption = DEFAULT_USERS,
    steps: StepsOption = DEFAULT_STEPS,
    judge: JudgeOption = "rule",
    seed: SeedOption = 0,
    url: UrlOption = None,
    plot: PlotOption = None,
    through_engine: ThroughEngineOption = False,
) -> None:
    """Simulate one policy and store the run."""
    _simulate(
        [policy], personas=personas, users=users, steps=steps, judge=judge, seed=seed,
        url=url, plot=plot, through_engine=through_engine,
    )  # fmt: skip


@sim_app.command("compare")
def sim_compare(
    policies: Annotated[
        str, typer.Option(help="Comma-separated policies; the first is the baseline.")
    ],
    personas: PersonasOption = "all",
    users: UsersOption = DEFAULT_USERS,
    steps: StepsOption = DEFAULT_STEPS,
    judge: JudgeOption = "rule",
    seed: SeedOption = 0,
    url: UrlOption = None,
    plot: PlotOption = Path("sim-compare.svg"),
    through_engine: ThroughEngineOption = False,
) -> None:
    """Simulate several policies on common random numbers and compare them."""
    _simulate(
        policies.split(","), personas=personas, users=users, steps=steps, judge=judge,
        seed=seed, url=url, plot=plot, through_engine=through_engine,
    )  # fmt: skip


def _open_store() -> SqlStore:
    settings = _settings()
    upgrade(settings.database_url)
    return SqlStore(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


@sim_app.command("list")
def sim_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """The newest simulation runs."""
    store = _open_store()
    try:
        runs = store.read(lambda txn: txn.list_runs(limit))
    finally:
        store.close()
    table = Table(title="Simulation runs")
    for column in ("run", "status", "progress", "policies", "users × steps", "judge"):
        table.add_column(column)
    for run in runs:
        config = run.config
        table.add_row(
            run.run_id,
            run.status,
            f"{run.done_steps}/{run.total_steps}",
            ",".join(config.get("policies", [])),
            f"{config.get('users')} × {config.get('steps')}",
            str(config.get("judge")),
        )
    console.print(table)


@sim_app.command("show")
def sim_show(run_id: str, plot: PlotOption = None) -> None:
    """One run's comparison table (and curves with --plot)."""
    store = _open_store()
    try:
        run = store.read(lambda txn: txn.get_run(run_id))
    finally:
        store.close()
    if run is None:
        console.print(f"[red]no run {escape(repr(run_id))}[/red]")
        raise typer.Exit(1)
    _report(run, plot)


@sim_app.command("personas")
def sim_personas(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Shipped persona names or .toml files to show in full (every shipped persona,"
            " in brief, if none): a check of a persona file before a run.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The shipped personas, or what persona files say."""
    try:
        personas = load_personas(names) if names else list(shipped_personas().values())
    except OOMLError as exc:
        _refuse(exc)
    if as_json:
        typer.echo(json.dumps([persona_data(p) for p in personas], indent=2))
    elif names:
        for persona in personas:
            console.print(persona_text(persona))
    else:
        console.print(personas_table(personas))


@app.command()
def ope(
    policy: Annotated[
        list[str], typer.Option("--policy", "-p", help="Policy to evaluate (repeatable).")
    ],
    since: Annotated[
        str | None, typer.Option(help="Start: ms, ISO 8601 time, or a duration ago like 7d.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive), same forms.")] = None,
    logged_policy: Annotated[
        list[str] | None,
        typer.Option("--logged-policy", help="Only decisions served by this policy."),
    ] = None,
    reward_rule: Annotated[
        str | None, typer.Option(help="Re-score outcomes with this rule (default: as logged).")
    ] = None,
    clip: Annotated[
        float | None, typer.Option(min=1.0, help="Clip importance weights at this value.")
    ] = None,
    max_rounds: Annotated[int | None, typer.Option(min=1)] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=0,
            help="Percentile-bootstrap intervals from this many resamples (0: normal ones).",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap's resamples.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Estimate off-policy how POLICY would have done on the logged decisions."""
    store = _open_store()
    now = int(time.time() * 1000)
    try:
        for name in policy:
            get_policy(name)
        rule = None if reward_rule is None else get_reward_rule(reward_rule)
        window = {
            "since_ms": 0 if since is None else parse_time(since, now, name="since"),
            "until_ms": END_OF_TIME_MS if until is None else parse_time(until, now, name="until"),
        }
        results = evaluate_many(  # one read of the log for every policy
            store,
            policy,
            logged_policies=logged_policy or None,
            reward_rule=rule,
            clip=clip,
            max_rounds=max_rounds,
            bootstrap=bootstrap,
            seed=seed,
            **window,
        )
    except OOMLError as exc:
        _refuse(exc)
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
        return
    for result in results:
        _print_evaluation(result)


def _print_evaluation(result: Evaluation) -> None:
    table = Table(title=f"{result.policy}: estimated mean reward per decision ({result.n} rounds)")
    for column in ("estimator", "estimate", "95% interval", "interval", "ESS", "max weight"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    rows = [("logged (actual)", result.logged), *result.estimates.items()]
    for label, est in rows:
        if est is None:
            continue
        table.add_row(
            label,
            f"{est.value:+.4f}",
            f"[{est.lower:+.4f}, {est.upper:+.4f}]",
            est.method,
            "" if est.ess is None else f"{est.ess:,.0f}",
            "" if est.max_weight is None else f"{est.max_weight:.2f}",
        )
    console.print(table)
    for name, (n, mean) in result.logged_by_policy.items():
        console.print(f"  logged by {name}: {n} rounds, mean reward {mean:+.4f}")
    sources = ", ".join(f"{k} {v}" for k, v in sorted(result.sources.items()))
    console.print(f"  {result.policy}'s probabilities: {sources or 'none'}")
    model = ", ".join(f"{k} {v}" for k, v in sorted(result.reward_model.items()))
    console.print(f"  {result.policy}'s expected rewards (DM, DR): {model or 'none'}")
    if result.skipped:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items()))
        console.print(f"  skipped: {skipped}")


# -- export ---------------------------------------------------------------------------------


@app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="dsjson (Vowpal Wabbit), csv or parquet.")],
    since: Annotated[
        str | None, typer.Option(help="Start: ms, ISO 8601 time, or a duration ago like 7d.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive), same forms.")] = None,
    policy: Annotated[
        list[str] | None, typer.Option(help="Only decisions of this policy (repeatable).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="File to write; standard output if omitted (not parquet).")
    ] = None,
    include_unlabeled: Annotated[
        bool, typer.Option(help="Also write decisions that have no feedback yet, unlabeled.")
    ] = False,
) -> None:
    """Export the decision log for other tools; a summary goes to standard error."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    if fmt == "parquet" and (output is None or str(output) == "-"):
        raise typer.BadParameter(
            "parquet is binary: give a file with --output", param_hint="--output"
        )
    errors = Console(stderr=True)
    now = int(time.time() * 1000)
    store = _open_store()
    try:
        summary = export_log(
            store,
            fmt,
            None if output is None or str(output) == "-" else output,
            since_ms=0 if since is None else parse_time(since, now, name="since"),
            until_ms=END_OF_TIME_MS if until is None else parse_time(until, now, name="until"),
            policies=policy or None,
            include_unlabeled=include_unlabeled,
        )
    except (OOMLError, ImportError) as exc:
        errors.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    errors.print(summary.describe(), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    app()
