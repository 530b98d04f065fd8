"""`scorehouse serve`: models over HTTP (MLflow /invocations, V2, /models/{name}/predict,
/metrics), in one process or several, plain or TLS. The web stack is imported only here,
inside the command."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    ACCEPT_HELP,
    ColumnsOpt,
    LogSampleOpt,
    RuntimeOpt,
    click_exc,
    column_policy,
    log_options,
    where,
)
from .output import err_console

if TYPE_CHECKING:
    from ..serve.settings import ServeSettings

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


#: Warnings only, and no access log: /metrics counts every request, and a log line per
#: request would cost a few percent of the throughput.
_UVICORN: dict[str, Any] = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 30}


#: `serve`'s defaults repeat those of scorehouse.serve.limits and .models (importing them
#: here would load the web stack for every command); tests/test_serve_limits.py checks them.
@commands.command()
def serve(
    refs: Annotated[list[str] | None, typer.Argument(help="Models: churn@production fraud/3 path/to/model.shz …")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (anything but loopback: use API keys and TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in artifact files.")] = False,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes (413 beyond); JSON parsing holds the server ~65 ns a byte.")] = 1024 * 1024,
    max_rows: Annotated[int, typer.Option(envvar="SCOREHOUSE_MAX_ROWS", help="Most rows per request (413 beyond).")] = 100_000,
    max_rejects: Annotated[int, typer.Option(envvar="SCOREHOUSE_MAX_REJECTS", help="Most rejects listed in an answer; the rest are counted by column and reason.")] = 100,
    timeout: Annotated[float | None, typer.Option(help="Seconds a request may take (504 beyond).")] = 30.0,
    read_timeout: Annotated[float, typer.Option(envvar="SCOREHOUSE_READ_TIMEOUT", help="Seconds a client has to send a request body (408 and disconnect beyond).")] = 30.0,
    keep_alive: Annotated[int, typer.Option(help="Seconds an idle keep-alive connection stays open.")] = 5,
    pinned_cache: Annotated[int, typer.Option(envvar="SCOREHOUSE_PINNED_CACHE", help="Versions pinned by /versions/{v} paths kept loaded (least recently used dropped); 0 turns pinning off.")] = 4,
    batching: Annotated[str, typer.Option(help="Micro-batch single records: auto (where it measurably helps), on, off.")] = "auto",
    api_key: Annotated[list[str] | None, typer.Option("--api-key", envvar="SCOREHOUSE_API_KEY", help="Require this bearer token (repeatable).")] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="File of bearer tokens, one per line ('#' comments); edits apply without a restart.")] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="Private key of --ssl-certfile (PEM), if not in that file.")] = None,
    columns: ColumnsOpt = "lenient",
    log_to: Annotated[str | None, typer.Option("--log-to", envvar="SCOREHOUSE_LOG_TO", help="Log every scored and rejected row (prediction log): 'parquet:' ($SCOREHOUSE_HOME/predictions), a folder, postgresql://…?table=, kafka://host/topic or redis://…?stream=; the other SCOREHOUSE_LOG_* variables apply. Each row's id is its request's X-Request-Id (answered in that header).")] = None,
    log_sample: LogSampleOpt = None,
    drift: Annotated[bool, typer.Option(help="Keep live drift windows against each model's training baseline, on /metrics (scorehouse_feature_drift, scorehouse_input_quality).")] = False,
    ui: Annotated[bool, typer.Option("--ui", help="Also serve the web console under /ui (same API keys: role=deployer keys in --api-key-file act; read-only without keys unless --ui-allow-writes).")] = False,
    ui_allow_writes: Annotated[bool, typer.Option("--ui-allow-writes", help="With --ui and no API keys, let anyone act in the console.")] = False,
    deployment: Annotated[list[str] | None, typer.Option("--deployment", help="Serve this registry deployment (repeatable), on every protocol under its name, beside or instead of models; its changes and alias moves apply without a restart.")] = None,
) -> None:
    """Serve models over HTTP: MLflow /invocations, V2 /v2/models/…/infer, /models/{name}/predict, /metrics.

    Examples:

        scorehouse serve churn@production fraud@production --port 8080 --workers 2

        scorehouse serve --deployment churn-api --log-to parquet:
    """
    from ..serve.entry import app_from_settings, listening_socket, tls_options
    from ..serve.settings import ServeSettings

    refs, deployments = _served(refs, deployment)
    _check_limits(batching, max_body, max_rows, max_rejects, pinned_cache, read_timeout)
    tls = tls_options(ssl_certfile, ssl_keyfile)  # a bad certificate: one line, here
    log_options(log_to, log_sample)  # a bad log option: exit 2 here, not in each worker
    settings = ServeSettings(
        refs=refs, deployments=deployments, runtime=runtime, trust=trust,
        accept_parity_difference=accept_parity_difference, max_body=max_body,
        max_rows=max_rows, max_rejects=max_rejects, read_timeout=read_timeout,
        pinned_cache=pinned_cache, timeout=timeout, batching=batching,
        api_keys=list(api_key or []), api_key_file=str(api_key_file) if api_key_file else None,
        columns=column_policy(columns).value, registry=where.registry, artifacts=where.artifacts,
        log_to=log_to, log_sample=log_sample, drift=drift)
    mounts = _console(settings, ui, ui_allow_writes)
    app = app_from_settings(settings, preload=True, mounts=mounts, watch=workers == 1)  # a bad model or key file: one line, here (with workers only a check: no watcher)
    # Bind before announcing: a busy port is one line and exit 1, never "serving ..." and
    # then a crash at start-up.
    sock = listening_socket(host, port)
    _announce([*refs, *(f"deployment {d}" for d in deployments)], host, port, workers, tls, bool(api_key or api_key_file), bool(mounts))
    _run_uvicorn(app, sock, settings, host, port, workers, keep_alive, tls, read_timeout,
                 factory="scorehouse.cli.ui:serve_app_from_env" if mounts else None)


def _console(settings: ServeSettings, ui: bool, allow_writes: bool) -> dict[str, Any] | None:
    """{"/ui": the web console} for `--ui` (on the server's registry and keys), else None;
    its settings go to worker processes in $SCOREHOUSE_UI_ARGS."""
    if not ui:
        if allow_writes:
            raise click_exc.BadParameter("--ui-allow-writes needs --ui")
        return None
    from ..ui import create_app
    from .ui import UI_ARGS, ui_settings

    log = settings.log_to if settings.log_to and "://" not in settings.log_to.removeprefix(
        "file://") else None
    console = ui_settings(api_keys=settings.api_keys,
                          api_key_file=Path(settings.api_key_file) if settings.api_key_file else None,
                          allow_writes=allow_writes, log_source=log)
    os.environ[UI_ARGS] = console.to_json()
    return {"/ui": create_app(console)}


def _served(refs: list[str] | None, deployments: list[str] | None
            ) -> tuple[list[str], list[str]]:
    """(model references, deployment names) to serve; UsageError (exit 2) for neither."""
    if not refs and not deployments:
        raise click_exc.UsageError("give a model to serve (churn@production, a .shz file) "
                                   "or --deployment NAME")
    return list(refs or []), list(deployments or [])


def _check_limits(batching: str, max_body: int, max_rows: int, max_rejects: int,
                  pinned_cache: int, read_timeout: float) -> None:
    """Refuse (BadParameter, exit 2) an unknown --batching mode or a negative limit."""
    if batching not in ("auto", "on", "off"):
        raise click_exc.BadParameter("--batching must be auto, on or off")
    if min(max_body, max_rows, max_rejects, pinned_cache) < 0 or read_timeout <= 0:
        raise click_exc.BadParameter("limits must be positive (0 allowed for --max-rejects "
                                     "and --pinned-cache)")


def _announce(refs: list[str], host: str, port: int, workers: int, tls: dict[str, Any],
              has_api_keys: bool, console: bool = False) -> None:
    """Say on stderr where the models are served, and warn when that is exposed."""
    from ..serve.entry import exposure_warning

    scheme = "https" if tls else "http"
    err_console.print(f"serving {', '.join(refs)} on {scheme}://{host}:{port} ({workers} "
                      "worker(s)); docs at /docs, metrics at /metrics"
                      + ("; console at /ui/" if console else ""))
    warning = exposure_warning(host, has_api_keys, bool(tls))
    if warning:
        logging.getLogger("scorehouse.serve").warning(warning)
        err_console.print(f"[bold red]WARNING[/]: {warning}", highlight=False)


def _run_uvicorn(app: Any, sock: Any, settings: ServeSettings, host: str, port: int,
                 workers: int, keep_alive: int, tls: dict[str, Any], read_timeout: float,
                 factory: str | None = None) -> None:
    """Serve `app` on the bound socket `sock` until stopped; with several workers, uvicorn
    starts processes that each build the app again from `settings` (with `factory`, an
    import string, instead of the server's own)."""
    import uvicorn

    # Request heads get the same deadline as bodies (uvicorn has none); worker processes
    # read it from the environment.
    os.environ["SCOREHOUSE_READ_TIMEOUT"] = str(read_timeout)
    from ..serve.protocol import HeadDeadlineProtocol

    options = dict(_UVICORN, timeout_keep_alive=keep_alive, http=HeadDeadlineProtocol, **tls)
    if workers > 1:  # each process loads the models itself: uvicorn needs an import string
        os.environ["SCOREHOUSE_SERVE_ARGS"] = settings.to_json()
        sock.close()  # uvicorn binds the address again for its worker processes
        uvicorn.run(factory or "scorehouse.serve.entry:app_from_env", factory=True, host=host, port=port,
                    workers=workers, **options)
        return
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options)).run(sockets=[sock])
