"""The `db` group: score inside PostgreSQL. `install` and `sync` copy registered models into
the database as PL/Python functions; `trigger` re-scores a profile on each event; `worker`
drains what an outbox trigger queued."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import JsonOpt, click_exc, open_registry
from .output import console, emit, err_console, table

#: Added to the root app as `scorehouse db` by `cli/app.py`.
group = typer.Typer(help="Score inside PostgreSQL: PL/Python functions over registered models.",
                    no_args_is_help=True)


@group.command("install")
def db_install(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    refs: Annotated[list[str], typer.Argument(help="Models: churn@production …")],
    schema: Annotated[str, typer.Option(help="Schema for the functions and models.")] = "scorehouse",
    grant: Annotated[list[str] | None, typer.Option("--grant", help="Role to grant EXECUTE (repeatable).")] = None,
    python_path: Annotated[list[str] | None, typer.Option(help="Where the server imports scorehouse from (default: this installation).")] = None,
    log_table: Annotated[str | None, typer.Option(help="Log every row the functions score into this table (created if missing), in the caller's transaction.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create (idempotently) the scoring functions and copy the models into the database.

    Example:

        scorehouse db install postgresql://postgres@localhost/crm churn@production --grant app_user
    """
    from ..sql.postgres import install

    done = install(url, list(refs), registry=open_registry(), schema=schema, grant=grant,
                   python_path=python_path, log_table=log_table)
    _db_report(done, schema, as_json)


@group.command("sync")
def db_sync(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    schema: Annotated[str, typer.Option(help="Schema the models were installed in.")] = "scorehouse",
    as_json: JsonOpt = False,
) -> None:
    """Copy in the new version of every installed alias that moved; the next call uses it.

    Example:

        scorehouse db sync postgresql://postgres@localhost/crm
    """
    from ..sql.postgres import sync

    _db_report(sync(url, registry=open_registry(), schema=schema), schema, as_json)


@group.command("trigger")
def db_trigger(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    model: Annotated[str, typer.Option(help="Installed model, e.g. churn.")],
    events: Annotated[str, typer.Option(help="Table whose inserts are events, e.g. complaints.")],
    profiles: Annotated[str, typer.Option(help="Profile table updated and re-scored, e.g. customer_profile.")],
    key: Annotated[str, typer.Option(help="Column naming the entity in both tables, e.g. customer_id.")],
    increment: Annotated[list[str] | None, typer.Option(help="Profile counter to add 1 to per event (repeatable).")] = None,
    copy: Annotated[list[str] | None, typer.Option(help="PROFILE_COL=EVENT_COL: keep the last value seen (repeatable).")] = None,
    mode: Annotated[str, typer.Option(help="transaction: score in the writer's transaction; outbox: queue for `db worker`.")] = "transaction",
    strict: Annotated[bool, typer.Option(help="Let a scoring failure abort the insert (transaction mode).")] = False,
    schema: Annotated[str, typer.Option(help="Schema the model was installed in.")] = "scorehouse",
    missing_profile: Annotated[str, typer.Option(help="An event whose key has no profile row: dead-letter (record it in <schema>.dead_events) or create (insert the profile row).")] = "dead-letter",
) -> None:
    """Events update a profile's counters, and the profile gets a fresh score.

    Every option is checked against the database before the old trigger is replaced.

    Example:

        scorehouse db trigger postgresql://postgres@localhost/crm --model churn --events complaints --profiles customer_profile --key customer_id --increment complaints
    """
    from ..sql.triggers import Recipe, install_trigger

    pairs = {}
    for item in copy or []:
        target, sep, source = item.partition("=")
        if not sep or not target or not source:
            raise click_exc.BadParameter(f"--copy expects PROFILE_COL=EVENT_COL, got {item!r}")
        pairs[target] = source
    done = install_trigger(url, Recipe(model, events, profiles, key, list(increment or []),
                                       pairs, mode, strict, schema, missing_profile))
    console.print(f"trigger on {events} -> {done.function}: {mode} mode"
                  + ("; run `scorehouse db worker` to score the queue" if mode == "outbox" else ""))
    console.print(f"profile columns: {', '.join(done.columns)}; events without a profile row: "
                  f"{missing_profile} ({done.dead_events:,} in {schema}.dead_events so far)")


@group.command("worker")
def db_worker(
    url: Annotated[str, typer.Argument(help="postgresql://user@host/db")],
    model: Annotated[str, typer.Option(help="Installed model whose queue to drain.")],
    schema: Annotated[str, typer.Option(help="Schema the model was installed in.")] = "scorehouse",
    batch: Annotated[int, typer.Option(help="Queued profiles scored per transaction.")] = 500,
    once: Annotated[bool, typer.Option(help="Drain the queue, then exit.")] = False,
) -> None:
    """Score the profiles queued by an outbox trigger (LISTEN/NOTIFY, batches, SKIP LOCKED).

    Example:

        scorehouse db worker postgresql://postgres@localhost/crm --model churn
    """
    from ..sql.worker import Worker

    worker = Worker(url, model, schema=schema, batch=batch)
    try:
        worker.run(once=once)
    finally:
        err_console.print(f"scored {worker.scored:,} profile(s), {worker.failed:,} refused")
        worker.close()


def _db_report(done: list[Any], schema: str, as_json: bool) -> None:
    from dataclasses import asdict

    emit([asdict(d) for d in done], as_json, lambda: table(
        ["model", "ref", "version", "changed", "functions"],
        [(d.name, d.ref, d.version, "yes" if d.changed else "no",
          f"{schema}.score, {schema}.score_query, {schema}.{d.function}, "
          f"{schema}.{d.query_function}") for d in done]))
