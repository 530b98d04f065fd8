"""The `scorehouse` command: the root app, its options, and `main`, the console script.

The verbs live in one module per group; each module's Typer is added here (the commands
of most merged into the root, `models` and `db` as groups):

    demo.py       demo
    artifacts.py  package, inspect, verify, sign          (artifact files)
    versions.py   register, promote, rollback, unalias, archive, restore   (the registry)
    scoring.py    predict, score, lookup                  (records, files and tables)
    serving.py    serve                                   (HTTP)
    shipping.py   bundle, doctor, container               (hermetic bundle, image)
    ui.py         ui                                      (the web console)
    streaming.py  stream, enrich                          (Redis Streams, NATS, Kafka)
    evaluating.py evaluate, and the `gates` group: set, show, check   (promotion evidence)
    retraining.py retrain                                 (refit by the recipe, gated challenger)
    cards.py      card                                    (a model card for audit)
    models.py     the `models` group: list, show, history, lineage
    database.py   the `db` group: install, sync, trigger, worker   (PostgreSQL)
    monitoring.py the `monitor` group: log, quality, drift, feedback (the prediction log)
    deploying.py  the `deploy` group: create, show, list, set, history, rollback, compare
                  (deployments; compare prints with compare_output.py)
    kubernetes.py k8s                                     (Kubernetes manifests)
    common.py     what they share: option types, the registry, loading a scorer
    output.py     how they print: JSON, tables, one line per error, control characters escaped

Exit codes: 0 ok; 1 error; 2 bad usage, unsupported model, or a compiled runtime the parity
gate rejected; 3 not found; 4 invalid input (rows rejected); 5 artifact refused (tampered,
untrusted, bad signature); 6 conflict (e.g. nothing to roll back; a SQL function name another
model holds; a promotion, or a retrain's alias move, the gates refused).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated, Any

import typer

from .. import __version__
from ..errors import ScorehouseError
from . import (
    artifacts,
    cards,
    database,
    demo,
    deploying,
    evaluating,
    kubernetes,
    models,
    monitoring,
    retraining,
    scoring,
    serving,
    shipping,
    streaming,
    ui,
    versions,
)
from .common import click_exc, where
from .output import console, err_console, error_line, warning_line

# Older typer re-exports click's Exit/Abort; newer typer has its own classes.
_EXIT = (typer.Exit, getattr(click_exc, "Exit", typer.Exit))
_ABORT = (typer.Abort, getattr(click_exc, "Abort", typer.Abort))
_CLICK_ERRORS = (click_exc.ClickException,)

app = typer.Typer(
    help="scorehouse: package a trained model, register every version, score it anywhere.\n\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 rows rejected, 5 artifact refused, "
    "6 conflict.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
# The order here is the order `scorehouse --help` lists them in: commands, then groups.
for _verbs in (demo, artifacts, versions, evaluating, retraining, cards, scoring, serving, ui,
               shipping, streaming, kubernetes):
    app.add_typer(_verbs.commands)
app.add_typer(models.group, name="models")
app.add_typer(evaluating.group, name="gates")
app.add_typer(database.group, name="db")
app.add_typer(monitoring.group, name="monitor")
app.add_typer(deploying.group, name="deploy")


def _print_version(value: bool) -> None:
    # Eager, so `scorehouse --version` works without a command.
    if value:
        console.print(f"scorehouse {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    registry: Annotated[str | None, typer.Option(
        "--registry", envvar="SCOREHOUSE_REGISTRY",
        help="Registry database URL (default: SQLite in $SCOREHOUSE_HOME).")] = None,
    artifacts: Annotated[str | None, typer.Option(
        "--artifacts", envvar="SCOREHOUSE_ARTIFACTS",
        help="Artifact store, any fsspec URL (default: $SCOREHOUSE_HOME/artifacts).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version.")] = False,
) -> None:
    where.registry, where.artifacts = registry, artifacts


# --- entry point -------------------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    warning_line(str(message))


def _show_flags_as_flags(command: Any) -> Any:
    """`command` with every on/off flag (and --help) shown in --help without a type: typer
    prints each option's type, so a flag read `--json <bool>`, as if it took a value."""
    try:  # recent typer vendors its own click
        from typer._click import Context
    except ImportError:  # pragma: no cover - older typer runs on click
        from click import Context  # type: ignore[assignment]  # the same class
    for param in [*command.params, command.get_help_option(Context(command))]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _show_flags_as_flags(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line and a documented exit code, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    debug = bool(os.environ.get("SCOREHOUSE_DEBUG"))
    try:
        command = _show_flags_as_flags(typer.main.get_command(app))
        rv = command.main(args=args, prog_name="scorehouse", standalone_mode=False)
    except _EXIT as e:
        sys.exit(e.exit_code)
    except _ABORT:
        err_console.print("aborted")
        sys.exit(130)
    except _CLICK_ERRORS as e:
        message = e.format_message()
        ctx = getattr(e, "ctx", None)
        if ctx is not None and not as_json:
            message += f" (see '{ctx.command_path} --help')"
        error_line(message, as_json, e.exit_code, type(e).__name__)
        sys.exit(e.exit_code)
    except ScorehouseError as e:
        if debug:
            raise
        error_line(str(e), as_json, e.exit_code, type(e).__name__)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        error_line(f"unexpected {type(e).__name__}: {e} (set SCOREHOUSE_DEBUG=1 for a traceback)",
                   as_json, 1, type(e).__name__)
        sys.exit(1)
    # Without standalone mode, typer returns (not raises) the code of a `typer.Exit(code)`.
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":  # pragma: no cover
    main()
