"""The batch channel's entry point: one `BatchJob` in, its `RunManifest` out.

`scorehouse score` and `scorehouse demo` both call `run_job`: it opens the input, the outputs
(a file or table, and/or a Redis cache) and the side files (rejects CSV, run manifest), runs
the job, and returns the manifest it also wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ScorehouseError
from ..monitor.live import LiveMonitor, NumberedIds
from ..monitor.log import Channel, LogOptions
from ..scorer import Scorer
from ..scorer.runs import ALL, RunManifest, RunOptions
from .addresses import open_cache, open_input, open_output, side_files
from .chunks import ChunkIds
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
    source = open_input(job.input, fmt=job.input_format, query=job.query,
                        chunk_rows=job.options.chunk_rows, categorical=scorer.schema.text_names)
    keep = job.options.keep
    if job.key and not (keep and (tuple(keep) == ALL or job.key in keep)):
        keep = [*(keep or []), job.key]  # the key column is what an upsert or a lookup needs
    options = replace(job.options, keep=keep)
    sinks = _open_sinks(scorer, job)
    default_rejects, default_manifest = side_files(job.output, scorer.name)
    progress = Progress(source.total, source.unit, enabled=job.progress)
    run_id = uuid.uuid4().hex
    live = None
    if job.log is not None:  # closed below: the log is flushed when the job ends
        live = LiveMonitor(job.log, Channel.SCORE, drift=False)
        live.watch(scorer)
    try:
        return run(scorer, source, sinks, RejectsFile(job.rejects or default_rejects),
                   job.manifest or default_manifest, options, progress,
                   ids=_row_ids(job.key, run_id) if live is not None else None, run_id=run_id)
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


def _open_sinks(scorer: Scorer, job: BatchJob) -> list[Sink]:
    """The job's outputs; those opened are aborted when a later one cannot be."""
    if job.output is None and job.cache is None:
        raise ScorehouseError("a batch job needs an output, a cache (redis://…), or both")
    sinks: list[Sink] = []
    try:
        if job.output is not None:
            sinks.append(open_output(job.output, fmt=job.output_format, key=job.key))
        if job.cache is not None:
            sinks.append(open_cache(job.cache, key=job.key, scorer=scorer, ttl=job.ttl))
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    return sinks
