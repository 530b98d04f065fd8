"""`scorehouse demo`: the whole path on generated churn data, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOpt, open_registry
from .output import console, emit_json

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write data and scores.")]
    = Path("scorehouse-demo"),
    rows: Annotated[int, typer.Option(help="Training rows to generate.")] = 20_000,
    drift: Annotated[bool, typer.Option(
        "--drift", help="Then score clean and shifted customers with the prediction log on "
                        "and write a monitoring report (report.html).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate churn data, train, package, register, promote and score a file; with
    --drift, also log clean then drifted scoring and write a monitoring report.

    Example:

        scorehouse demo --rows 5000 --drift
    """
    from ..demo import run_demo

    reg = open_registry()
    say = (lambda *_: None) if as_json else console.print
    say(f"scorehouse demo: registry {reg.url}\n")
    out = run_demo(directory, reg, rows=rows, say=say)
    if drift:
        from ..demo.drift import run_drift

        out["drift"] = run_drift(directory, reg, say=say)
        out["seconds"] = round(out["seconds"] + out["drift"]["seconds"], 2)
    if as_json:
        emit_json(out)
        return
    console.print(f"\ndone in {out['seconds']}s. Try next:\n"
                  "  scorehouse models list\n"
                  "  scorehouse models show churn\n"
                  "  scorehouse predict churn@production --json "
                  "'{\"tenure\": 3, \"plan\": \"gold\", \"contract\": \"month-to-month\", "
                  "\"monthly_charges\": 72.5, \"total_charges\": 210, \"support_calls\": 4, "
                  "\"complaints\": 1, \"age\": 41, \"data_usage_gb\": 3.2, "
                  "\"days_since_login\": 12, \"payment_method\": \"invoice\", "
                  "\"region\": \"north\"}'\n"
                  f"  scorehouse register {out['artifact']} && scorehouse promote churn/2 "
                  "production\n"
                  "  scorehouse rollback churn production\n"
                  "  scorehouse models history churn"
                  + ("\n  scorehouse monitor drift churn@production --window 5000rows\n"
                     f"  open {out['drift']['report']}" if drift else ""))
