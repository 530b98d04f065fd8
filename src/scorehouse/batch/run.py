"""A batch run: stream chunks from a source, score them on every core, write them in order.

Every run accounts for each input record: read = scored + rejected, where rejected counts
rows the schema refused, rows the model could not score, and records too malformed to parse.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ScorehouseError
from ..schema import ColumnCheck, ColumnPolicy
from ..scorer import Result, Scorer
from .chunks import Scored, check_columns, kept_columns, output_schema, positions, score_chunk
from .progress import Progress
from .rejects import RejectsFile
from .streams import Sink, Source, partial_path

#: Exit codes a scheduler can act on.
EXIT_OK, EXIT_FAILED, EXIT_REJECTS, EXIT_INTERRUPTED = 0, 1, 4, 130


class Interrupted(ScorehouseError):
    """The run was stopped by a signal; its outputs were removed."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class Options:
    """How to run: columns to pass through, threads, chunk size and the reject threshold."""

    keep: Sequence[str] | None = None
    with_model: bool = False
    workers: int = 0
    chunk_rows: int = 49152
    max_reject_rate: float = 0.0
    #: Absent optional / unknown columns: flagged and reported (lenient) or refused (strict).
    columns: ColumnPolicy = ColumnPolicy.LENIENT


@dataclass
class Totals:
    """Counts that add up over chunks."""

    read: int = 0
    scored: int = 0
    rejected: int = 0
    flagged: int = 0
    flags: dict[str, dict[str, int]] = field(default_factory=dict)
    rejects_by_column: dict[str, int] = field(default_factory=dict)
    #: How the input's columns compared with the schema (checked once, before scoring).
    columns: ColumnCheck = field(default_factory=ColumnCheck)

    def add(self, s: Scored | Totals) -> None:
        """Fold one chunk's counts (or another run part's totals) in."""
        self.read += s.read
        self.scored += s.scored
        self.rejected += s.rejected
        self.flagged += s.flagged
        for kind, cols in s.flags.items():
            for col, k in cols.items():
                self.flags.setdefault(kind, {})[col] = self.flags.get(kind, {}).get(col, 0) + k
        for col, k in getattr(s, "rejects_by_column", {}).items():
            self.rejects_by_column[col] = self.rejects_by_column.get(col, 0) + k

    def add_result(self, result: Result) -> None:
        """Fold one scoring call's counts in, its problems included."""
        self.add(Totals(result.n_read, result.n_scored, result.n_rejected, result.n_flagged,
                        result.flag_counts()))
        for r in result.rejects:
            self.count_reject(r.column)

    def count_reject(self, column: str | None) -> None:
        """One more problem in `column` (None: the record or the model)."""
        key = column or "<row>"
        self.rejects_by_column[key] = self.rejects_by_column.get(key, 0) + 1


def run(scorer: Scorer, source: Source, sinks: Sequence[Sink], rejects: RejectsFile,
        manifest_path: Path | None, options: Options, progress: Progress | None = None
        ) -> dict[str, Any]:
    """Score `source` into `sinks`; returns the run manifest (also written to `manifest_path`).

    On any failure or signal the sinks and the rejects file are rolled back and the error
    is raised; nothing appears under a final name.
    """
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    totals = Totals()
    progress = progress or Progress(None, "rows", enabled=False)
    try:
        with _signals_raise():
            _stream(scorer, source, sinks, rejects, options, totals, progress)
        seconds = time.perf_counter() - clock
        manifest = run_manifest(scorer, totals, source.describe(), options, started, seconds)
        schema = output_schema(scorer, pa.schema([]), options.with_model)
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
    manifest["outputs"] = [s.describe() for s in sinks]
    manifest["rejects"] = rejects.describe()
    if manifest_path is not None:
        write_json(manifest_path, manifest)
    return manifest


def _stream(scorer: Scorer, source: Source, sinks: Sequence[Sink], rejects: RejectsFile,
            options: Options, totals: Totals, progress: Progress) -> None:
    workers = options.workers or default_workers(scorer)
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
        totals.columns = check_columns(scorer, source.columns, options.columns)
    with ThreadPoolExecutor(workers, thread_name_prefix="scorehouse-batch") as pool:
        try:
            for batch in itertools.chain([first] if first is not None else [], batches):
                if keep is None:
                    totals.columns = check_columns(scorer, batch.schema.names, options.columns)
                    keep = kept_columns(options.keep, batch.schema.names, scorer)
                    kept = pa.schema([batch.schema.field(n) for n in keep])
                    schema = output_schema(scorer, kept, options.with_model)
                where = positions(parsed, batch.num_rows, [m.row for m in source.malformed])
                parsed += batch.num_rows
                pending.append(pool.submit(score_chunk, scorer, batch, where, keep, schema,
                                           options.with_model))
                drain(workers)  # bounded: a few chunks in flight, whatever the input size
            drain(0)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    _flush_malformed(source, written_malformed, rejects, totals)
    progress.update(totals.read, totals.read, source.done() if source.done else None)


def default_workers(scorer: Scorer) -> int:
    """Scoring threads when --workers is 0: one when the runtime already uses every core on
    a chunk (more would only hold more chunks in memory), else one per core."""
    return 1 if scorer.runtime.parallel_batches else (os.cpu_count() or 1)


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


def run_manifest(scorer: Scorer, totals: Totals, source: dict[str, Any], options: Options,
                 started: datetime, seconds: float) -> dict[str, Any]:
    """The run manifest: model, input, counts (read = scored + rejected), rates, options."""
    if totals.read != totals.scored + totals.rejected:  # pragma: no cover - an invariant
        raise ScorehouseError(f"internal error: read {totals.read} != scored {totals.scored} + "
                              f"rejected {totals.rejected}; please report it")
    rate = totals.rejected / totals.read if totals.read else 0.0
    over = rate > options.max_reject_rate
    return {
        "run_id": uuid.uuid4().hex,
        "status": "rejects over threshold" if over else "ok",
        "exit_code": EXIT_REJECTS if over else EXIT_OK,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seconds": round(seconds, 3),
        "rows_per_second": round(totals.read / seconds) if seconds > 0 else None,
        "model": {"name": scorer.name, "version": scorer.version, "ref": scorer.ref,
                  "runtime": scorer.runtime.name,
                  **({"parity_accepted": scorer.runtime.parity_accepted}
                     if scorer.runtime.parity_accepted else {}),
                  "manifest_sha256": scorer.artifact.manifest_sha256},
        "input": source,
        "counts": {"read": totals.read, "scored": totals.scored, "rejected": totals.rejected,
                   "flagged": totals.flagged},
        "reject_rate": round(rate, 6),
        "max_reject_rate": options.max_reject_rate,
        "flags": totals.flags,
        "rejects_by_column": dict(sorted(totals.rejects_by_column.items())),
        "columns": totals.columns.to_dict(),
        "options": {"keep": list(options.keep or []), "with_model": options.with_model,
                    "columns": options.columns.value,
                    "workers": options.workers or default_workers(scorer),
                    "chunk_rows": options.chunk_rows},
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


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
