"""``oo-ml``: the command line of the service."""

from __future__ import annotations

import json
import os
import secrets
from typing import Annotated

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from oo_ml.api.app import engine_config
from oo_ml.engine import Engine
from oo_ml.errors import NotFoundError
from oo_ml.features import ENCODERS, get_encoder
from oo_ml.policies import POLICIES
from oo_ml.rewards import REWARD_RULES, get_reward_rule
from oo_ml.serve import run_server
from oo_ml.settings import Settings
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
    for column in ("name", "encoder", "d", "exploration", "parameters", "description"):
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
        console.print(f"[red]invalid settings:[/red] {exc}")
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
    run_server(host, port, workers, settings.log_level)


if __name__ == "__main__":  # pragma: no cover
    app()
