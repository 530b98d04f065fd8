"""The batch channel's entry point: one `BatchJob` in, its `RunManifest` out.

`scorehouse score` and `scorehouse demo` both call `run_job`: it opens the input, the outputs
(a file or table, and/or a Redis cache) and the side files (rejects CSV, run manifest), runs
the job, and returns the manifest it also wrote. `scorehouse score --deployment` calls
`run_deployment`, the same job through a deployment's roles (`deployed.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ScorehouseError
from ..monitor.live import LiveMonitor, NumberedIds
from ..monitor.log import Channel, LogOptions
from ..routing import Rendezvous
from ..scorer import Scorer
from ..scorer.runs import ALL, RunManifest, RunOptions
from .addresses import open_cache, open_input, open_output, side_files
from .chunks import ChunkIds, ModelPlan, Plan
from .deployed import DeploymentPlan
from .progress import Progress
from .rejects import RejectsFile
from .run import run
from .sources_sinks import Sink


@dataclass
class BatchJob:
    """What to score and where the results go, as `scorehouse score` takes it.

    `input`: a file (.csv[.gz|.zst], .parquet, .jsonl), a Parquet folder or glob, '-' for
    stdin, or a database URL; `output`: a file, '-' for stdout, or a database URL with
    ?table=; `cache`: a redis:// URL to also write each row's scores to (needs `key`). At
    least one of `output` and `cache` is needed.
    """

    input: str
    output: str | None = None
    options: RunOptions = field(default_factory=RunOptions)
    #: Input and output formats (default: from the names).
    input_format: str | None = None
    output_format: str | None = None
    #: SQL to read instead of ?table= (a database input).
    query: str | None = None
    #: Key column: upsert on it in a table; names each row's Redis hash.
    key: str | None = None
    cache: str | None = None
    #: Seconds before the Redis hashes expire (None: never).
    ttl: int | None = None
    #: Side files; default beside a file output, else in $SCOREHOUSE_HOME/runs/<model>-<stamp>/.
    rejects: Path | None = None
    manifest: Path | None = None
    #: Show a progress bar (a terminal) or progress lines (a log) on stderr.
    progress: bool = True
    #: The prediction log (None: none). A row's id is its `key` value when there is a key,
    #: else `<run id>:<input row number>` (the output's `row`).
    log: LogOptions | None = None


def run_job(scorer: Scorer, job: BatchJob) -> RunManifest:
    """Run `job` with `scorer`; returns the run manifest, written to `job.manifest` (or its
    default place; `RunManifest.path` says where).

    Raises:
        ScorehouseError: neither an output nor a cache; an input, output or option the
            adapters refuse; or what `run` raises (then no output is kept).
    """
    def plan(ids: ChunkIds, live: LiveMonitor | None) -> Plan:
        if live is not None:
            live.watch(scorer)
        return ModelPlan(scorer, job.options.with_model, ids if live is not None else None)

    def cache(uri: str) -> Sink:
        return open_cache(uri, key=job.key, scorer=scorer, ttl=job.ttl)

    return _execute(job, scorer, scorer.name, scorer.schema.text_names, plan, cache)


def run_deployment(rz: Rendezvous, job: BatchJob, *, all_roles: bool = False,
                   revision: int | None = None) -> RunManifest:
    """Run `job` through deployment `rz`: each row answered as the deployment answers a
    request (see `deployed`), the answering model's output plus who answered, and with
    `all_roles` every model's output as `<role>.<column>` columns. The spec in force when
    the job starts scores every row (`revision`: its number in the registry, for the
    manifest). A cache (`job.cache`) keeps each key's answer under the deployment's name.

    Raises:
        ScorehouseError: as `run_job`; UsageError: models whose outputs cannot share a
            column (see `DeploymentPlan`).
    """
    spec = rz.spec
    scorers = [rz.scorers.get(ref) for ref in spec.refs()]
    made: list[DeploymentPlan] = []

    def plan(ids: ChunkIds, live: LiveMonitor | None) -> Plan:
        made.append(DeploymentPlan(rz, ids, with_model=job.options.with_model,
                                   all_roles=all_roles, live=live, revision=revision))
        return made[0]

    def cache(uri: str) -> Sink:
        if not made:  # the plan first: its output columns are the cache's fields
            raise ScorehouseError("internal error: the plan is made before the cache")
        return open_cache(uri, key=job.key, scorer=None, ttl=job.ttl, model=spec.name,
                          fields=made[0].cached_fields())

    text = sorted({n for s in scorers for n in s.schema.text_names})
    return _execute(job, scorers[0], spec.name, text, plan, cache)


def _execute(job: BatchJob, scorer: Scorer, name: str, categorical: Sequence[str],
             make_plan: Callable[[ChunkIds, LiveMonitor | None], Plan],
             cache: Callable[[str], Sink]) -> RunManifest:
    """Open the job's input, outputs, side files and log; run `make_plan`'s plan (given
    the rows' ids and the log, None without one); close the log."""
    source = open_input(job.input, fmt=job.input_format, query=job.query,
                        chunk_rows=job.options.chunk_rows, categorical=categorical)
    keep = job.options.keep
    if job.key and not (keep and (tuple(keep) == ALL or job.key in keep)):
        keep = [*(keep or []), job.key]  # the key column is what an upsert or a lookup needs
    options = replace(job.options, keep=keep)
    run_id = uuid.uuid4().hex
    live = None
    if job.log is not None:  # closed below: the log is flushed when the job ends
        live = LiveMonitor(job.log, Channel.SCORE, drift=False)
    try:
        plan = make_plan(_row_ids(job.key, run_id), live)
        sinks = _open_sinks(job, cache)
        default_rejects, default_manifest = side_files(job.output, name)
        progress = Progress(source.total, source.unit, enabled=job.progress)
        return run(scorer, source, sinks, RejectsFile(job.rejects or default_rejects),
                   job.manifest or default_manifest, options, progress, run_id=run_id,
                   plan=plan)
    finally:
        if live is not None:
            live.close()


def _row_ids(key: str | None, run_id: str) -> ChunkIds:
    """The log ids of a chunk's rows: the key column's values (a null key: the row
    number), else `<run id>:<input row number>`."""
    def ids(batch: pa.RecordBatch, where: np.ndarray) -> Sequence[str]:
        numbered = NumberedIds(run_id, len(where), where, sep=":")
        if key is None or key not in batch.schema.names:
            return numbered
        values = batch.column(key).to_pylist()
        return [numbered[i] if v is None else str(v) for i, v in enumerate(values)]
    return ids


def _open_sinks(job: BatchJob, cache: Callable[[str], Sink]) -> list[Sink]:
    """The job's outputs; those opened are aborted when a later one cannot be."""
    if job.output is None and job.cache is None:
        raise ScorehouseError("a batch job needs an output, a cache (redis://…), or both")
    sinks: list[Sink] = []
    try:
        if job.output is not None:
            sinks.append(open_output(job.output, fmt=job.output_format, key=job.key))
        if job.cache is not None:
            sinks.append(cache(job.cache))
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    return sinks
