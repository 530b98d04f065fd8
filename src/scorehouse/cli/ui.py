"""`scorehouse ui`: the web console on its own port (registry, deployments, monitoring,
model cards in a browser); and what `scorehouse serve --ui` mounts under /ui. The web
stack is imported only inside the command."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import click_exc, where
from .output import err_console

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()
#: The environment variable carrying the console's settings to server worker processes.
UI_ARGS = "SCOREHOUSE_UI_ARGS"


def ui_settings(*, api_keys: list[str] | None = None, deployer_keys: list[str] | None = None,
                api_key_file: Path | None = None, allow_writes: bool = False,
                log_source: str | None = None, rules: Path | None = None,
                labels: Path | None = None, label_id: str = "id",
                label_target: str = "label") -> Any:
    """The `UiSettings` of the root options and these, with a fresh secret.

    Raises:
        click BadParameter: --allow-writes with API keys (the keys' roles decide; exit 2).
    """
    from ..ui import UiSettings

    settings = UiSettings(
        registry=where.registry, artifacts=where.artifacts, api_keys=list(api_keys or []),
        deployer_keys=list(deployer_keys or []),
        api_key_file=str(api_key_file) if api_key_file else None, allow_writes=allow_writes,
        log_source=log_source, rules=str(rules) if rules else None,
        labels=str(labels) if labels else None, label_id=label_id, label_target=label_target)
    if allow_writes and settings.has_keys:
        raise click_exc.BadParameter("--allow-writes is for a console without API keys; with "
                                     "keys, deployer keys act (role=deployer in the key file, "
                                     "or --deployer-key)")
    return settings.with_secret()


@commands.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on (anything but loopback: use API keys and TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8500,
    api_key: Annotated[list[str] | None, typer.Option("--api-key", envvar="SCOREHOUSE_API_KEY", help="A reader key: may look (repeatable).")] = None,
    deployer_key: Annotated[list[str] | None, typer.Option("--deployer-key", envvar="SCOREHOUSE_DEPLOYER_KEY", help="A deployer key: may also promote, roll back, archive, change deployments (repeatable).")] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="The server's key file: one key a line, 'KEY role=deployer user=NAME' (role reader by default); edits apply at once.")] = None,
    allow_writes: Annotated[bool, typer.Option("--allow-writes", help="Without API keys, let anyone act (the console is read-only otherwise).")] = False,
    log_source: Annotated[str | None, typer.Option(help="The Parquet prediction log the monitoring pages read (default $SCOREHOUSE_HOME/predictions).")] = None,
    rules: Annotated[Path | None, typer.Option(help="Alert rules (TOML) shown on monitoring pages: one file, or a folder of MODEL.toml.")] = None,
    labels: Annotated[Path | None, typer.Option(help="A folder of late labels, MODEL.parquet or MODEL.csv, for decay charts.")] = None,
    label_id: Annotated[str, typer.Option(help="The labels' column of the logged row id.")] = "id",
    label_target: Annotated[str, typer.Option(help="The labels' column of the true value.")] = "label",
) -> None:
    """Serve the web console: models, versions and aliases, promote and roll back through
    the gates, compare versions, deployments, monitoring charts, model cards.

    Runs until stopped. Without API keys it is read-only unless --allow-writes.

    Example:

        scorehouse ui --port 8500 --api-key-file keys.txt
    """
    import uvicorn

    from ..serve.entry import exposure_warning, listening_socket
    from ..ui import create_app

    settings = ui_settings(api_keys=api_key, deployer_keys=deployer_key,
                           api_key_file=api_key_file, allow_writes=allow_writes,
                           log_source=log_source, rules=rules, labels=labels,
                           label_id=label_id, label_target=label_target)
    app = create_app(settings)  # a bad registry or key file: one line, here
    sock = listening_socket(host, port)
    mode = "read-only" if not (settings.has_keys or allow_writes) else \
        "keys required" if settings.has_keys else "anyone may act (--allow-writes)"
    err_console.print(f"console on http://{host}:{port}/ ({mode})")
    warning = exposure_warning(host, settings.has_keys, False)
    if warning:
        logging.getLogger("scorehouse.ui").warning(warning)
        err_console.print(f"[bold red]WARNING[/]: {warning}", highlight=False)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def serve_app_from_env() -> Any:
    """What `scorehouse serve --ui --workers N` has each worker process build: the server
    of $SCOREHOUSE_SERVE_ARGS with the console of $SCOREHOUSE_UI_ARGS under /ui."""
    from ..serve.entry import app_from_settings
    from ..serve.settings import ServeSettings
    from ..ui import UiSettings, create_app

    console = create_app(UiSettings.from_json(os.environ[UI_ARGS]))
    return app_from_settings(ServeSettings.from_json(os.environ["SCOREHOUSE_SERVE_ARGS"]),
                             preload=True, mounts={"/ui": console})
