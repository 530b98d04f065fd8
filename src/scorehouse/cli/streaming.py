"""Event streams (Redis Streams, NATS JetStream, Kafka): `stream` updates a profile per event,
scores it and publishes the score; `enrich` only updates profiles and publishes event +
profile, for a separate `stream` worker to score.

Both build their worker with the stream channel's `open_worker`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import (
    ACCEPT_HELP,
    LogSampleOpt,
    LogToOpt,
    RuntimeOpt,
    click_exc,
    load_scorer,
    log_options,
    open_registry,
)
from .output import err_console

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command()
def stream(
    source: Annotated[str, typer.Option(help="Events: redis://host:6379/0?stream=events, nats://host:4222?subject=events (JetStream) or kafka://host:9092?topic=events (dead letters: <topic>.dead, or &dead=NAME).")],
    key: Annotated[str, typer.Option(help="Event field naming the entity, e.g. customer_id (with PostgreSQL profiles, also the table's key column).")],
    ref: Annotated[str | None, typer.Argument(help="churn@production, churn/3, or an artifact path (or --deployment NAME).")] = None,
    profiles: Annotated[str | None, typer.Option(help="Profiles: redis://host:6379/0 (hashes <prefix><key>; default: the source's server) or postgresql://user@host/db?table=customer_profile (rows keyed by --key).")] = None,
    prefix: Annotated[str, typer.Option(help="Profile hash prefix.")] = "profile:",
    sink: Annotated[str | None, typer.Option(help="Output stream for scores. With Redis profiles: a stream on the profiles' server, written with the profile atomically (redis://…?stream=scores; default <stream>:scores). With PostgreSQL profiles: on the source's broker, fed from the table's outbox after each commit, at least once (a bare name or a URL on that broker; default <stream>:scores on Redis, <subject/topic>.scores on NATS/Kafka).")] = None,
    reducer: Annotated[str | None, typer.Option(help='How an event changes a profile: JSON spec ({"count": …, "last": …, "sum": …}), a .json file, or module:function.')] = None,
    group: Annotated[str, typer.Option(help="Consumer group.")] = "scorehouse",
    consumer: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid).")] = None,
    batch: Annotated[int, typer.Option(help="Events per round trip.")] = 200,
    max_attempts: Annotated[int, typer.Option(help="Deliveries before a poison event is dead-lettered.")] = 3,
    claim_idle_ms: Annotated[int, typer.Option(help="Reclaim events a consumer has held this long (NATS: the ack wait; Kafka: the retry delay of events left unsettled).")] = 30_000,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    until_idle: Annotated[bool, typer.Option(help="Exit when the stream has nothing more.")] = False,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    log_to: LogToOpt = None,
    log_sample: LogSampleOpt = None,
    drift: Annotated[bool, typer.Option(help="Keep a live drift window against the training baseline (on --metrics-port).")] = True,
    deployment: Annotated[str | None, typer.Option("--deployment", help="Score through deployment NAME instead of one model: each event answered as a request is (no deadline), who answered in the output message, every role logged; changes in the registry apply between batches.")] = None,
    follow_every: Annotated[float, typer.Option(help="With --deployment: seconds between looks at the registry for a new revision or a moved alias.")] = 2.0,
) -> None:
    """Consume events, update profiles, score them, write back and publish (Redis Streams, NATS, Kafka).

    Example:

        scorehouse stream churn@production --source 'redis://localhost:6379/0?stream=events' --key customer_id --reducer '{"count": {"complaints": "type=complaint"}}'

        scorehouse stream --deployment churn-api --source 'nats://localhost:4222?subject=events' --key customer_id --log-to parquet:
    """
    log = log_options(log_to, log_sample)
    from ..stream import WorkerOptions, open_worker

    scorer, followed, what = _scoring(ref, deployment, follow_every, runtime, trust,
                                      accept_parity_difference)
    worker = open_worker(scorer, WorkerOptions(
        source, key, profiles=profiles, prefix=prefix, sink=sink, reducer=reducer, group=group,
        consumer=consumer, batch=batch, max_attempts=max_attempts, claim_idle_ms=claim_idle_ms,
        log=log, drift=drift), deployment=followed)
    if metrics_port:
        from ..stream.metrics import serve_metrics
        serve_metrics(worker, metrics_port)
    err_console.print(f"scoring {worker.events.stream} as {group}/{worker.events.consumer} with "
                      f"{what} -> {worker.output_stream}")
    try:
        s = worker.run(until_idle=until_idle)
    finally:
        worker.close()  # the prediction log is flushed on SIGTERM too
    err_console.print(f"{s.events:,} events: {s.scored:,} scored, {s.duplicates:,} already applied, "
                      f"{s.dead:,} dead-lettered, {s.retried:,} left for retry")


def _scoring(ref: str | None, deployment: str | None, follow_every: float,
             runtime: str | None, trust: bool, accept: bool) -> tuple[Any, Any, str]:
    """(scorer, followed deployment, what the worker scores with, for its first line): one
    of the two. UsageError (exit 2): both or neither."""
    if (ref is None) == (deployment is None):
        raise click_exc.UsageError("give a model REF or --deployment NAME (one of them)")
    if ref is not None:
        scorer = load_scorer(ref, runtime=runtime, trust=trust, accept_parity_difference=accept)
        return scorer, None, f"{scorer.name}/{scorer.version or '-'}"
    from ..routing.following import follow

    assert deployment is not None
    followed = follow(deployment, open_registry(), every=follow_every, runtime=runtime)
    return None, followed, f"deployment {deployment} (revision {followed.revision})"


@commands.command()
def enrich(
    source: Annotated[str, typer.Option(help="Events: redis://…?stream=events, nats://…?subject=events or kafka://…?topic=events.")],
    key: Annotated[str, typer.Option(help="Event field naming the entity, e.g. customer_id.")],
    sink: Annotated[str, typer.Option(help="Enriched events (event + updated profile): on the profiles' Redis (redis://…?stream=events:enriched), or with PostgreSQL profiles on the source's broker (a bare name or a URL there).")],
    reducer: Annotated[str | None, typer.Option(help="How an event changes a profile (as for `stream`).")] = None,
    profiles: Annotated[str | None, typer.Option(help="Profiles: redis://host:6379/0 (default: the source's server) or postgresql://user@host/db?table=NAME.")] = None,
    prefix: Annotated[str, typer.Option(help="Profile hash prefix.")] = "profile:",
    group: Annotated[str, typer.Option(help="Consumer group.")] = "scorehouse-enrich",
    consumer: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid).")] = None,
    batch: Annotated[int, typer.Option(help="Events per round trip.")] = 200,
    until_idle: Annotated[bool, typer.Option(help="Exit when the stream has nothing more.")] = False,
) -> None:
    """Update profiles from events and publish event + profile, for a separate `stream` worker to score.

    Example:

        scorehouse enrich --source 'redis://localhost:6379/0?stream=events' --key customer_id --reducer '{"last": {"plan": "plan"}}' --sink 'redis://localhost:6379/0?stream=events:enriched'
    """
    from ..stream import WorkerOptions, open_worker

    worker = open_worker(None, WorkerOptions(
        source, key, profiles=profiles, prefix=prefix, sink=sink, output_suffix="enriched",
        reducer=reducer, group=group, consumer=consumer, batch=batch))
    s = worker.run(until_idle=until_idle)
    err_console.print(f"{s.events:,} events: {s.scored:,} applied, {s.duplicates:,} already applied, "
                      f"{s.dead:,} dead-lettered")
