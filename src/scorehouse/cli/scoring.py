"""Scoring with a model: `predict` records given as JSON, `score` a file, folder or table
(on this machine, or on Spark), and `lookup` a score that `score --to redis://…` wrote.

`_score_here`, `_score_on_spark` and `_run_summary` wire `score` to the batch and Spark
channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInputError
from .common import (
    ACCEPT_HELP,
    ColumnsOpt,
    JsonOpt,
    LogSampleOpt,
    LogToOpt,
    RuntimeOpt,
    click_exc,
    column_policy,
    load_scorer,
    log_options,
    open_registry,
    read_records,
)
from .output import emit, emit_json, err_console, table

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command()
def predict(
    ref: Annotated[str, typer.Argument(help="churn@production, churn/3, or an artifact path.")],
    json_input: Annotated[str | None, typer.Option(
        "--json", help="One record or a list of records as JSON (output is always JSON).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="JSON Lines file of records ('-' for stdin).")] = None,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    columns: ColumnsOpt = "lenient",
    log_to: LogToOpt = None,
    log_sample: LogSampleOpt = None,
) -> None:
    """Score records given as JSON; prints predictions and rejects as JSON (exit 4 on rejects).

    With --log-to, the output's `request_id` is the logged id of one record (of record i
    of several: `<request_id>/<i>`).

    Examples:

        scorehouse predict churn@production --json '{"tenure": 3, "plan": "gold"}'

        scorehouse predict churn/3 -i records.jsonl
    """
    if (json_input is None) == (input_file is None):
        raise click_exc.UsageError("give exactly one of --json '{...}' or --input FILE.jsonl")
    records = read_records(json_input, input_file)
    log = log_options(log_to, log_sample)
    scorer = load_scorer(ref, runtime=runtime, trust=trust,
                         accept_parity_difference=accept_parity_difference)
    result, request_id = _predict_logged(scorer, records, column_policy(columns), log)
    if not result.column_check.clean:
        err_console.print(f"[yellow]warning:[/] {result.column_check.describe()}", markup=True)
    emit_json({"model": scorer.name, "version": scorer.version, "runtime": result.runtime,
               **({"request_id": request_id} if request_id else {}),
               **({"parity_accepted": result.parity_accepted} if result.parity_accepted else {}),
               "predictions": result.to_records(),
               "rejects": [r.to_dict() for r in result.rejects],
               "columns": result.column_check.to_dict()})
    if result.rejects:
        raise typer.Exit(InvalidInputError.exit_code)


@commands.command()
def score(
    ref: Annotated[str, typer.Argument(help="churn@production, churn/3, or an artifact path (with --deployment: leave it out, give INPUT [OUTPUT]).")],
    input: Annotated[str | None, typer.Argument(help="File (.csv[.gz|.zst], .parquet, .jsonl), Parquet folder or glob, '-' for stdin, or a database URL (postgresql://…?table=t, sqlite:///f.db?table=t, duckdb:///f.duckdb?table=t).")] = None,
    output: Annotated[str | None, typer.Argument(help="File, '-' for stdout, or a database URL with ?table=…; optional with --to.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="Input format: csv, parquet or jsonl (default: from the extension).")] = None,
    output_format: Annotated[str | None, typer.Option(help="Output format (default: from the extension).")] = None,
    keep: Annotated[str | None, typer.Option(help="Input columns to pass through: 'id,segment' or 'all'.")] = None,
    with_model: Annotated[bool, typer.Option(help="Add model and model_version columns.")] = False,
    workers: Annotated[int, typer.Option(help="Scoring threads (0: auto; the ONNX runtime already spreads each chunk over every core).")] = 0,
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk; memory grows with chunk x workers, not with the input.")] = 49152,
    max_reject_rate: Annotated[float, typer.Option(help="Exit 4 when the share of rejected rows is above this (0: any reject).")] = 0.0,
    query: Annotated[str | None, typer.Option(help="SQL query to read instead of ?table= (database input).")] = None,
    key: Annotated[str | None, typer.Option(help="Key column: upsert on it in a table, name each Redis hash by it, id of each row in the prediction log.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Also write scores to Redis: redis://host:6379/0 (needs --key).")] = None,
    ttl: Annotated[int | None, typer.Option(help="Expire Redis hashes after this many seconds.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Rejects CSV (default: OUTPUT.rejects.csv, or $SCOREHOUSE_HOME/runs/…).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Run manifest JSON (default: OUTPUT.run.json, or $SCOREHOUSE_HOME/runs/…).")] = None,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run manifest as JSON on stdout.")] = False,
    engine: Annotated[str, typer.Option(help="batch (this machine) or spark (Parquet in and out, on a Spark cluster).")] = "batch",
    master: Annotated[str | None, typer.Option(help="Spark master for --engine spark: local[*], spark://host:7077, … (default: spark-submit's, else local[*]).")] = None,
    columns: ColumnsOpt = "lenient",
    log_to: LogToOpt = None,
    log_sample: LogSampleOpt = None,
    deployment: Annotated[str | None, typer.Option("--deployment", help="Score through deployment NAME instead of one model: each row answered as a request is (sticky split, routes, fallbacks, default; shadows and canaries score every row; no deadline in batch), with answered_by, role, fallback, fallback_reason columns. Give INPUT [OUTPUT] only.")] = None,
    all_roles: Annotated[bool, typer.Option(help="With --deployment: every model scores every row, its columns added as <role>.<column> (challengers by reference).")] = False,
) -> None:
    """Score a file, folder or table in bounded memory; exit 0 all scored, 4 too many rejects, 1 failure.

    Examples:

        scorehouse score churn@production customers.csv scores.csv --keep customer_id

        scorehouse score churn@production 'data/*.parquet' scores.parquet --keep all --with-model

        scorehouse score --deployment churn-api customers.csv scores.parquet --keep customer_id --all-roles
    """
    from ..batch import BatchJob, RunOptions, run_job

    log = log_options(log_to, log_sample)
    input, output = _positionals(ref, input, output, deployment, all_roles)
    _check_score_usage(input, output, to, as_json, engine, query, log)
    options = RunOptions(keep=_kept_columns(keep), with_model=with_model, workers=workers,
                         chunk_rows=chunk_rows, max_reject_rate=max_reject_rate,
                         columns=column_policy(columns))
    job = BatchJob(input, output, options, input_format=fmt, output_format=output_format,
                   query=query, key=key, cache=to, ttl=ttl, rejects=rejects, manifest=manifest,
                   progress=not quiet, log=log)
    if deployment is not None:
        return _report(_score_deployment(deployment, job, all_roles, runtime, engine), as_json, quiet)
    scorer = load_scorer(ref, runtime=runtime, trust=trust,
                         accept_parity_difference=accept_parity_difference)
    if engine == "spark":
        return _report(_score_on_spark(scorer, input, output, options, master, rejects,
                                       manifest, log, key), as_json, quiet)
    _report(run_job(scorer, job), as_json, quiet)


def _report(result: Any, as_json: bool, quiet: bool) -> None:
    """The run manifest as JSON, or its summary on stderr; exit with its code."""
    if as_json:
        emit_json(result.to_dict())
    elif not quiet:
        for line in result.summary():
            err_console.print(line)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@commands.command()
def lookup(
    model: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    key: Annotated[str, typer.Argument(help="The key value the scores were written under.")],
    redis_url: Annotated[str, typer.Option("--redis", envvar="SCOREHOUSE_REDIS", help="Redis URL.")] = "redis://127.0.0.1:6379/0",
    as_json: JsonOpt = False,
) -> None:
    """Read one precomputed score written by `score --to redis://…` (exit 3 when absent).

    Example:

        scorehouse lookup churn C100042 --redis redis://localhost:6379/0
    """
    from ..batch.cache import hash_name
    from ..batch.cache import lookup as read_scores
    from ..errors import NotFoundError
    from ..registry.refs import valid_name

    valid_name(model)

    scores = read_scores(redis_url, model, key)
    if scores is None:
        raise NotFoundError(f"no cached scores under {hash_name(model, key)} in {redis_url}")
    emit(scores, as_json, lambda: table(["field", "value"], sorted(scores.items())))


def _predict_logged(scorer: Any, records: Any, columns: Any, log: Any) -> tuple[Any, str | None]:
    """(`scorer.predict(records)`, the request id its rows were logged under, or None
    without a log); the log is flushed before returning."""
    if log is None:
        return scorer.predict(records, columns=columns), None
    from ..monitor.live import LiveMonitor, NumberedIds, row_ids
    from ..monitor.log import Channel, new_id

    request_id = new_id()
    n = len(records) if isinstance(records, list) else 1
    live = LiveMonitor(log, Channel.PREDICT, drift=False)
    try:
        live.watch(scorer)
        with row_ids([request_id] if n == 1 else NumberedIds(request_id, n)):
            result = scorer.predict(records, columns=columns)
    finally:
        live.close()
    return result, request_id


def _positionals(ref: str, input: str | None, output: str | None, deployment: str | None,
                 all_roles: bool) -> tuple[str, str | None]:
    """(INPUT, OUTPUT) of `score`: after REF, or with --deployment the first two
    positionals. UsageError (exit 2): a REF beside --deployment, no INPUT, --all-roles alone."""
    if deployment is not None:
        if output is not None:
            raise click_exc.UsageError("with --deployment give INPUT [OUTPUT], not a model "
                                       "reference as well")
        return ref, input
    if all_roles:
        raise click_exc.UsageError("--all-roles needs --deployment NAME")
    if input is None:
        raise click_exc.UsageError("give REF INPUT [OUTPUT] (or --deployment NAME INPUT [OUTPUT])")
    return input, output


def _score_deployment(name: str, job: Any, all_roles: bool, runtime: str | None,
                      engine: str) -> Any:
    """`batch.run_deployment` of the stored deployment `name`, its models loaded from the
    registry the root options name (the revision in force now scores the whole job)."""
    if engine != "batch":
        raise click_exc.UsageError("--deployment scores with --engine batch")
    from ..batch import run_deployment
    from ..routing.following import follow

    # Every model loaded before the input is opened; the spec stays the job's.
    stored = follow(name, open_registry(), runtime=runtime, workers=1, off_path_workers=1)
    try:
        return run_deployment(stored.rz, job, all_roles=all_roles, revision=stored.revision)
    finally:
        stored.close()


def _check_score_usage(input: str, output: str | None, to: str | None, as_json: bool,
                       engine: str, query: str | None, log: Any) -> None:
    """Refuse (UsageError, exit 2) a `score` call that names nowhere to write, or prints
    JSON on a stdout the scores already use, or names an unknown engine, or asks Spark for
    what it does not do."""
    if output is None and to is None:
        raise click_exc.UsageError("give an OUTPUT, --to redis://…, or both")
    if as_json and output == "-":
        raise click_exc.UsageError("--json prints on stdout, which the output '-' already uses")
    if engine not in ("batch", "spark"):
        raise click_exc.UsageError(f"--engine must be batch or spark, not {engine!r}")
    if engine == "spark" and (output is None or to or query or output == "-" or input == "-"):
        raise click_exc.UsageError("--engine spark reads Parquet from INPUT and writes Parquet to OUTPUT "
                                   "(no stdin/stdout, --to or --query)")


def _kept_columns(keep: str | None) -> list[str] | tuple[str, ...] | None:
    """`--keep`: None (no input column), ("*",) for 'all', else the listed column names."""
    if keep is None:
        return None
    return ("*",) if keep == "all" else [k.strip() for k in keep.split(",") if k.strip()]


# --- wiring: `score --engine spark` -> the Spark channel ------------------------------------


def _score_on_spark(scorer: Any, input: str, output: str | None, options: Any,
                    master: str | None, rejects: Path | None, manifest: Path | None,
                    log: Any, key: str | None) -> Any:
    """The Spark channel's job on INPUT -> OUTPUT, with the side files beside OUTPUT; with a
    log, executors log every row (id: the `key` column's value, else `<run id>:<n>`)."""
    assert output is not None  # _check_score_usage refused a Spark job without one
    from ..spark.job import JobPaths, run_job, session

    paths = JobPaths.beside(output, scorer.name, str(rejects) if rejects else None, manifest)
    return run_job(session(master, options.chunk_rows), scorer, input, paths, options,
                   log=log, key=key)
