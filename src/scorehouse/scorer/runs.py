"""Run accounting shared by the channels that score a whole input (batch, Spark).

A *run* scores one input with one Scorer and accounts for each input record:
read = scored + rejected. This module holds what every such run has in common, so that the
channels need not import each other:

- `RunOptions`: the columns to pass through, threads, chunk size, the reject threshold;
- `Totals`: counts that add up over chunks (or Spark tasks);
- `RunManifest`: the record a run leaves (written as JSON beside its output);
- `kept_columns` / `check_columns`: the input's columns checked before anything is scored;
- `partial_path`: the hidden name a run's file is written under until it is complete.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from .. import config
from ..errors import SchemaError, ScorehouseError
from ..schema import ColumnCheck, ColumnPolicy, check_names
from .result import Result, output_columns
from .scorer import Scorer

log = logging.getLogger("scorehouse.batch")

#: Exit codes a scheduler can act on.
EXIT_OK, EXIT_FAILED, EXIT_REJECTS, EXIT_INTERRUPTED = 0, 1, 4, 130
#: Pass through every input column (`--keep all`).
ALL = ("*",)


@dataclass
class RunOptions:
    """How to run: columns to pass through, threads, chunk size and the reject threshold."""

    keep: Sequence[str] | None = None
    with_model: bool = False
    #: Scoring threads; 0: `default_workers`.
    workers: int = 0
    chunk_rows: int = 49152
    #: Share of rejected records (0..1) above which the run exits EXIT_REJECTS.
    max_reject_rate: float = 0.0
    #: Absent optional / unknown columns: flagged and reported (lenient) or refused (strict).
    columns: ColumnPolicy = ColumnPolicy.LENIENT


def default_workers(scorer: Scorer) -> int:
    """Scoring threads when --workers is 0: one when the runtime already uses every core on
    a chunk (more would only hold more chunks in memory), else one per core."""
    return 1 if scorer.runtime.parallel_batches else (os.cpu_count() or 1)


@dataclass
class Totals:
    """Counts that add up over chunks: read = scored + rejected once every chunk is in."""

    read: int = 0
    scored: int = 0
    rejected: int = 0
    flagged: int = 0
    #: flag kind -> column -> rows flagged.
    flags: dict[str, dict[str, int]] = field(default_factory=dict)
    #: column (or "<row>": the record or the model) -> problems.
    rejects_by_column: dict[str, int] = field(default_factory=dict)
    #: How the input's columns compared with the schema (checked once, before scoring).
    columns: ColumnCheck = field(default_factory=ColumnCheck)

    def add(self, s: Any) -> None:
        """Fold in one chunk's counts (anything with read, scored, rejected, flagged and
        flags, e.g. batch's `Scored`) or another run part's Totals."""
        self.read += s.read
        self.scored += s.scored
        self.rejected += s.rejected
        self.flagged += s.flagged
        for kind, cols in s.flags.items():
            for col, k in cols.items():
                self.flags.setdefault(kind, {})[col] = self.flags.get(kind, {}).get(col, 0) + k
        if isinstance(s, Totals):
            for col, k in s.rejects_by_column.items():
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


class RunStatus(str, Enum):
    """How a run ended, as its manifest says."""

    OK = "ok"
    REJECTS_OVER_THRESHOLD = "rejects over threshold"


@dataclass
class RunModel:
    """The model a run scored with, as its manifest names it."""

    name: str
    version: int | None
    ref: str
    runtime: str
    #: Why a compiled graph that failed the parity gate was used anyway (None: it was not).
    parity_accepted: str | None
    manifest_sha256: str

    @classmethod
    def of(cls, scorer: Scorer) -> RunModel:
        """The model of `scorer`."""
        return cls(scorer.name, scorer.version, scorer.ref, scorer.runtime.name,
                   scorer.runtime.parity_accepted, scorer.artifact.manifest_sha256)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `model` object (`parity_accepted` only when set)."""
        return {"name": self.name, "version": self.version, "ref": self.ref,
                "runtime": self.runtime,
                **({"parity_accepted": self.parity_accepted} if self.parity_accepted else {}),
                "manifest_sha256": self.manifest_sha256}


@dataclass
class RunManifest:
    """What a run leaves: model, input, counts (read = scored + rejected), rates, options,
    outputs. `to_dict` gives the JSON a scheduler reads (`<output>.run.json`)."""

    run_id: str
    status: RunStatus
    exit_code: int
    started_at: datetime
    finished_at: datetime
    seconds: float
    model: RunModel
    #: Where the input came from (uri, format, sha256 when known).
    input: dict[str, Any]
    totals: Totals
    options: RunOptions
    #: Scoring threads used (`options.workers`, or the default when 0).
    workers: int
    #: Where the scores went (uri, format, rows, ...); one entry per output.
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: Where the rejected rows went.
    rejects: dict[str, Any] = field(default_factory=dict)
    #: Set by engines other than batch (Spark: {"engine": "spark", "master": ...}).
    engine: dict[str, str] = field(default_factory=dict)
    #: A run through a deployment: its name, revision, spec and who answered (else empty).
    deployment: dict[str, Any] = field(default_factory=dict)
    #: The file the manifest was written to (not part of the JSON).
    path: Path | None = None

    @classmethod
    def of(cls, scorer: Scorer, totals: Totals, source: dict[str, Any], options: RunOptions,
           started: datetime, seconds: float) -> RunManifest:
        """The manifest of a finished run that took `seconds`.

        Raises:
            ScorehouseError: the counts do not add up (read != scored + rejected), a bug.
        """
        if totals.read != totals.scored + totals.rejected:  # pragma: no cover - an invariant
            raise ScorehouseError(f"internal error: read {totals.read} != scored {totals.scored} + "
                                  f"rejected {totals.rejected}; please report it")
        rate = totals.rejected / totals.read if totals.read else 0.0
        over = rate > options.max_reject_rate
        return cls(run_id=uuid.uuid4().hex,
                   status=RunStatus.REJECTS_OVER_THRESHOLD if over else RunStatus.OK,
                   exit_code=EXIT_REJECTS if over else EXIT_OK, started_at=started,
                   finished_at=datetime.now(timezone.utc), seconds=seconds,
                   model=RunModel.of(scorer), input=source, totals=totals, options=options,
                   workers=options.workers or default_workers(scorer))

    @property
    def reject_rate(self) -> float:
        """Rejected records / records read (0 for an empty input)."""
        t = self.totals
        return t.rejected / t.read if t.read else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The run manifest as JSON data (the keys and order the run.json file has)."""
        t, o = self.totals, self.options
        return {
            "run_id": self.run_id, "status": self.status.value, "exit_code": self.exit_code,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(t.read / self.seconds) if self.seconds > 0 else None,
            "model": self.model.to_dict(),
            "input": self.input,
            "counts": {"read": t.read, "scored": t.scored, "rejected": t.rejected,
                       "flagged": t.flagged},
            "reject_rate": round(self.reject_rate, 6),
            "max_reject_rate": o.max_reject_rate,
            "flags": t.flags,
            "rejects_by_column": dict(sorted(t.rejects_by_column.items())),
            "columns": t.columns.to_dict(),
            "options": {"keep": list(o.keep or []), "with_model": o.with_model,
                        "columns": o.columns.value, "workers": self.workers,
                        "chunk_rows": o.chunk_rows, **self.engine},
            "outputs": self.outputs,
            "rejects": self.rejects,
            **({"deployment": self.deployment} if self.deployment else {}),
        }

    def write(self, path: Path) -> None:
        """Write the JSON to `path` (under a partial name, then renamed into place)."""
        write_json(path, self.to_dict())
        self.path = path

    def summary(self) -> list[str]:
        """What a person reads after the run: counts, speed, flags, column warnings, rejects,
        the exit code and where the manifest is (one text line per item)."""
        t, m = self.totals, self.model
        where = ", ".join(o["uri"] for o in self.outputs)
        per_second = round(t.read / self.seconds) if self.seconds > 0 else 0
        lines = [f"scored {t.scored:,} of {t.read:,} rows ({t.rejected:,} rejected, "
                 f"{t.flagged:,} flagged) in {round(self.seconds, 3):.1f} s, {per_second:,} "
                 f"rows/s with {m.name}/{m.version or '-'} ({m.runtime}) -> {where}"]
        if self.deployment:
            d = self.deployment
            lines.append(f"  deployment {d['name']}: " + ", ".join(
                f"{a['ref'] or a['role']} ({a['role']}) {a['rows']:,}" for a in d["answered"])
                + f"; {d['fallbacks']:,} by a fallback or the default")
        for kind, cols in t.flags.items():
            lines.append(f"  {kind}: " + ", ".join(f"{k} {v:,}" for k, v in cols.items()))
        columns = t.columns.to_dict()
        if columns.get("absent_optional"):
            lines.append(f"  warning: column(s) {', '.join(columns['absent_optional'])} absent "
                         "from the input, scored as missing (flagged absent_column)")
        lines += _unknown_lines(columns.get("unknown") or [])
        if t.rejected:
            by = ", ".join(f"{k} {v:,}" for k, v in sorted(t.rejects_by_column.items()))
            lines.append(f"  rejects ({by}): {self.rejects['uri']}")
        if self.exit_code:
            lines.append(f"  reject rate {round(self.reject_rate, 6):.4%} is above "
                         f"--max-reject-rate {self.options.max_reject_rate:.4%}: "
                         f"exit {self.exit_code}")
        lines.append(f"  run manifest: {self.path}")
        return lines


def _unknown_lines(unknown: list[dict[str, Any]]) -> list[str]:
    lines = []
    for u in unknown:
        hint = f" (did you mean {u['did_you_mean']!r}?)" if u["did_you_mean"] else ""
        lines.append(f"  unknown column {u['column']!r} ignored{hint}")
    return lines


def kept_columns(keep: Sequence[str] | None, available: Sequence[str], scorer: Scorer) -> list[str]:
    """The input columns to pass through (`ALL`: every one), checked against the input and
    against the output's own names.

    Raises:
        ScorehouseError: a kept column is not in the input, or would clash with an output
            column (row, model, model_version, the predictions).
    """
    if not keep:
        return []
    names = list(available) if tuple(keep) == ALL else list(keep)
    missing = [n for n in names if n not in available]
    if missing:
        raise ScorehouseError(f"--keep names column(s) not in the input: {', '.join(missing)} "
                              f"(the input has: {', '.join(available)})")
    taken = {"row", "model", "model_version", *output_columns(scorer.task, scorer.classes)}
    clash = [n for n in names if n in taken]
    if clash:
        raise ScorehouseError(f"input column(s) {', '.join(clash)} would clash with scorehouse's "
                              "output columns; leave them out of --keep")
    return names


def check_columns(scorer: Scorer, available: Sequence[str],
                  policy: ColumnPolicy = ColumnPolicy.LENIENT) -> ColumnCheck:
    """The input's columns against the model's, before anything is scored (schema.policy).

    Raises:
        SchemaError: a required column is not in the input at all; nothing is scored then.
        ColumnsError: `policy` is strict and the columns differ.
    """
    check = check_names(scorer.schema, available).enforce(policy)
    missing = check.absent_required
    if missing:
        raise SchemaError(f"the input has no column(s) {', '.join(missing)}, which model "
                          f"{scorer.name!r} requires (the input has: {', '.join(available)}); "
                          "nothing was scored")
    return check


def run_folder(model: str) -> Path:
    """A new folder for a run's side files: `$SCOREHOUSE_HOME/runs/<model>-<UTC stamp>`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return config.home() / "runs" / f"{model}-{stamp}"


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as JSON under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


def partial_path(target: Path) -> Path:
    """The hidden name `target` is written under until it is complete:
    `.NAME.partial-HOST-PID` in the same folder, so the final rename is atomic.

    A run killed with SIGKILL (or by the OOM killer) cannot remove its partials; so the
    partials of `target` left by processes of this host that no longer run are removed
    here, before the new one is made. A running job's partial, or one of another host
    (a shared folder), is never touched.
    """
    host = socket.gethostname()
    for stale in target.parent.glob(f".{_glob_escape(target.name)}.partial-*"):
        owner = stale.name[len(target.name) + len(".partial-") + 1:]
        where, _, pid = owner.rpartition("-")
        if where in ("", host) and pid.isdigit() and not _running(int(pid)):
            try:
                stale.unlink()
                log.info("removed %s, left by process %s that no longer runs", stale, pid)
            except FileNotFoundError:  # another run removed it first
                pass
    return target.with_name(f".{target.name}.partial-{host}-{os.getpid()}")


def _running(pid: int) -> bool:
    """True when a process `pid` exists (or we cannot tell): its partial stays."""
    if pid <= 0 or pid == os.getpid():
        return True  # not a pid of another process: keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
