"""A batch run: stream chunks from a source, score them on every core, write them in order.

Every run accounts for each input record: read = scored + rejected, where rejected counts
rows the schema refused, rows the model could not score, and records too malformed to parse.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ScorehouseError
from ..scorer import Scorer
from ..scorer.runs import EXIT_INTERRUPTED, RunManifest, RunOptions, Totals, default_workers
from .chunks import ChunkIds, ModelPlan, Plan, Scored, positions
from .progress import Progress
from .rejects import RejectsFile
from .sources_sinks import Sink, Source


class Interrupted(ScorehouseError):
    """The run was stopped by a signal; its outputs were removed."""

    exit_code = EXIT_INTERRUPTED


def run(scorer: Scorer, source: Source, sinks: Sequence[Sink], rejects: RejectsFile,
        manifest_path: Path | None, options: RunOptions, progress: Progress | None = None,
        *, ids: ChunkIds | None = None, run_id: str | None = None,
        plan: Plan | None = None) -> RunManifest:
    """Score `source` into `sinks`; returns the run manifest (also written to `manifest_path`).
    `ids` names each chunk's rows for the prediction log; `run_id`: the manifest's
    (default: a new one); `plan`: how chunks are scored (default: `scorer` alone, a
    `ModelPlan`; a deployment's is `deployed.DeploymentPlan`).

    On any failure or signal the sinks and the rejects file are rolled back and the error
    is raised; nothing appears under a final name.

    Raises:
        Interrupted: SIGTERM stopped the run.
        SchemaError, ColumnsError: the input's columns do not fit the model.
        ScorehouseError: the input or an output failed (the message says which).
    """
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    totals = Totals()
    progress = progress or Progress(None, "rows", enabled=False)
    plan = plan or ModelPlan(scorer, options.with_model, ids)
    try:
        with _signals_raise():
            _stream(plan, source, sinks, rejects, options, totals, progress)
        seconds = time.perf_counter() - clock
        manifest = RunManifest.of(scorer, totals, source.describe(), options, started, seconds)
        manifest.run_id = run_id or manifest.run_id
        plan.finish(manifest)
        schema = plan.schema(pa.schema([]))
        for sink in sinks:
            sink.commit(schema)
        rejects.commit()
    except BaseException:
        for sink in sinks:
            sink.abort()
        rejects.abort()
        raise
    finally:
        progress.close()
    manifest.outputs = [s.describe() for s in sinks]
    manifest.rejects = rejects.describe()
    if manifest_path is not None:
        manifest.write(manifest_path)
    return manifest


def _stream(plan: Plan, source: Source, sinks: Sequence[Sink], rejects: RejectsFile,
            options: RunOptions, totals: Totals, progress: Progress) -> None:
    workers = options.workers or default_workers(plan.scorer)
    pending: deque[Future[Scored]] = deque()
    parsed = 0  # rows the parser produced so far (malformed records excluded)
    keep: list[str] | None = None
    schema: pa.Schema | None = None
    written_malformed = 0

    def drain(limit: int) -> None:
        nonlocal written_malformed
        while len(pending) > limit:
            scored = pending.popleft().result()
            for sink in sinks:
                sink.write(scored.table)
            for r in scored.rejects:
                rejects.write(r.row, r.column, r.reason, r.value)
                totals.count_reject(r.column)
            totals.add(scored)
            written_malformed = _flush_malformed(source, written_malformed, rejects, totals)
            progress.update(totals.read, parsed + len(source.malformed),
                            source.done() if source.done else None)

    batches = _batches(source)
    first = next(batches, None)  # opens the input: a CSV's header is known from here on
    if source.columns is not None:
        totals.columns = plan.check_columns(source.columns, options.columns)
    with ThreadPoolExecutor(workers, thread_name_prefix="scorehouse-batch") as pool:
        try:
            for batch in itertools.chain([first] if first is not None else [], batches):
                if keep is None:
                    totals.columns = plan.check_columns(batch.schema.names, options.columns)
                    keep = plan.kept(options.keep, batch.schema.names)
                    kept = pa.schema([batch.schema.field(n) for n in keep])
                    schema = plan.schema(kept)
                where = positions(parsed, batch.num_rows, [m.row for m in source.malformed])
                parsed += batch.num_rows
                pending.append(pool.submit(plan.score, batch, where, keep, schema))
                drain(workers)  # bounded: a few chunks in flight, whatever the input size
            drain(0)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    _flush_malformed(source, written_malformed, rejects, totals)
    progress.update(totals.read, totals.read, source.done() if source.done else None)


def _batches(source: Source) -> Iterator[pa.RecordBatch]:
    for batch in source.batches:
        if batch.num_rows:
            yield batch


def _flush_malformed(source: Source, written: int, rejects: RejectsFile, totals: Totals) -> int:
    for m in source.malformed[written:]:
        rejects.write(m.row, None, m.reason, m.text)
        totals.count_reject(None)
        totals.read += 1
        totals.rejected += 1
    return len(source.malformed)


class _signals_raise:
    """Turn SIGTERM into an exception in the main thread, so outputs are rolled back."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Interrupted(f"stopped by signal {signal.Signals(signum).name}; no output was kept")

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
