"""``oo-ml``: the command line of the service."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from oo_ml.errors import NotFoundError
from oo_ml.features import ENCODERS, get_encoder
from oo_ml.policies import POLICIES
from oo_ml.rewards import REWARD_RULES, get_reward_rule

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


@app.command()
def rewards(
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


if __name__ == "__main__":  # pragma: no cover
    app()
