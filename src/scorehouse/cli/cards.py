"""`card`: a model card for audit (HTML, printable to PDF, or Markdown) from what the
artifact and the registry know; see `scorehouse.reports.card`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import open_registry
from .output import console

#: Merged into the root app by `cli/app.py` (`card`).
commands = typer.Typer()


@commands.command()
def card(
    ref: Annotated[str, typer.Argument(help="Version (churn/3, churn@production) or artifact file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The card: .html (self-contained, printable) or .md.")],
    log: Annotated[bool, typer.Option("--log/--no-log", help="Add drift (and with --labels, decay) since deployment from the prediction log, when it holds rows of the version.")] = True,
    source: Annotated[str | None, typer.Option(help="The Parquet prediction log (default $SCOREHOUSE_HOME/predictions).")] = None,
    window: Annotated[str, typer.Option(help="Window of the log: all, hour, day, week, 6h, 5000rows ...")] = "day",
    labels: Annotated[Path | None, typer.Option(help="True labels of logged rows (.parquet/.csv), for decay.")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="The labels' row id column.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="The labels' target column.")] = None,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
) -> None:
    """Write a model card: details and lineage, the author's text (package --card), training
    data, holdout metrics and curves, segments, feature importance, compiled runtime parity,
    schema, alias history with gate results, drift and decay since deployment.

    Example: scorehouse card churn@production -o churn-card.html
    """
    from ..registry.refs import ModelRef
    from ..reports.card import LogOptions, build_card, card_format, card_input

    fmt = card_format(output)  # refuse a bad suffix before any work
    parsed = ModelRef.parse(ref)
    evidence = card_input(parsed, registry=None if parsed.is_path else open_registry(),
                          trust=trust, log=LogOptions(log, source, window, labels, id_column,
                                                      target))
    build_card(evidence, output, fmt)
    console.print(f"wrote the model card of {evidence.ref} to {output}")
