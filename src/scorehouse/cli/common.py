"""What every verb group of the CLI shares: the registry the root options name, the option
types several commands take, loading a scorer from a reference, and reading records.

Only light modules are imported here: each command imports what it needs (the registry,
a runtime, the web stack) when it runs, so `scorehouse --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..errors import InvalidInputError, ScorehouseError

try:  # recent typer vendors its own click and does not install click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer runs on click
    from click import exceptions as click_exc  # type: ignore[no-redef]  # the same module

__all__ = ["ACCEPT_HELP", "ColumnsOpt", "JsonOpt", "LogSampleOpt", "LogToOpt", "Reason",
           "RuntimeOpt", "User", "click_exc", "column_policy", "load_scorer", "log_options",
           "open_registry", "read_records", "where"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts and CI/CD.")]
RuntimeOpt = Annotated[Literal["native", "onnx"] | None, typer.Option(
    help="native (the model's own library) or onnx (the compiled graph); default: onnx when it "
         "passed the parity gate at packaging, else native.")]
ColumnsOpt = Annotated[str, typer.Option(
    help="lenient: score inputs lacking an optional column (rows flagged absent_column) or "
         "carrying unknown ones (reported); strict: refuse them (exit 4).")]
#: --accept-parity-difference: the one way to run a compiled graph the parity gate rejected.
ACCEPT_HELP = ("With --runtime onnx: score with the compiled graph even though it failed the "
               "parity gate at packaging (refused otherwise); results then say so.")
LogToOpt = Annotated[str | None, typer.Option(
    "--log-to", help="Log every scored and rejected row (prediction log): 'parquet:' "
    "($SCOREHOUSE_HOME/predictions), a folder, postgresql://…?table=, kafka://host/topic or "
    "redis://…?stream=; options in the query (sample, exclude, hash, salt, queue, flush).")]
LogSampleOpt = Annotated[float | None, typer.Option(
    "--log-sample", help="Share of rows logged, 0..1, by a hash of the row id (default 1).")]
Reason = Annotated[str, typer.Option("--reason", "-m", help="Why (kept in the history).")]
User = Annotated[str | None, typer.Option("--user", help="Who (default: $SCOREHOUSE_USER or login).")]


@dataclass
class RegistryLocation:
    """Where the registry lives: the root options `--registry` (a database URL) and
    `--artifacts` (an fsspec URL); None means the default under $SCOREHOUSE_HOME."""

    registry: str | None = None
    artifacts: str | None = None


#: Set by the root callback (`scorehouse --registry … COMMAND`) before any command runs.
where = RegistryLocation()


def open_registry() -> Any:
    """The `Registry` the root options name (a `scorehouse.registry.Registry`)."""
    from ..registry import Registry

    return Registry(where.registry, where.artifacts)


def load_scorer(ref: str, *, runtime: str | None, trust: bool,
                accept_parity_difference: bool) -> Any:
    """The prepared `Scorer` of `ref`: an artifact path, or a registry reference
    (churn@production, churn/3) read from the registry the root options name.

    Raises:
        NotFoundError: no such artifact, model, version or alias.
        ArtifactError: the artifact is refused (tampered, untrusted, bad signature).
        ParityError: `runtime="onnx"` on a graph that failed the parity gate, without
            `accept_parity_difference`.
    """
    from ..loading import load
    from ..registry.refs import ModelRef

    model = ModelRef.parse(ref)
    return load(model, registry=None if model.is_path else open_registry(), runtime=runtime,
                trust=trust, accept_parity_difference=accept_parity_difference)


def log_options(log_to: str | None, log_sample: float | None) -> Any:
    """The `LogOptions` of `--log-to URL --log-sample R` (None: no log), the other
    SCOREHOUSE_LOG_* variables applying as for servers.

    Raises:
        click BadParameter: --log-sample without --log-to, or an option out of range (exit 2).
    """
    if log_to is None:
        if log_sample is not None:
            raise click_exc.BadParameter("--log-sample needs --log-to")
        return None
    from ..monitor.log import LogOptions

    try:
        return LogOptions.from_env({**os.environ, "SCOREHOUSE_LOG_TO": log_to},
                                   **({} if log_sample is None else {"sample": log_sample}))
    except ScorehouseError as e:
        raise click_exc.BadParameter(str(e)) from None


def column_policy(columns: str) -> Any:
    """The `ColumnPolicy` named by `--columns` (lenient or strict).

    Raises:
        click BadParameter: any other name (exit 2).
    """
    from ..schema import ColumnPolicy

    try:
        return ColumnPolicy.parse(columns)
    except ScorehouseError as e:
        raise click_exc.BadParameter(str(e)) from None


def read_records(json_input: str | None, input_file: Path | None) -> Any:
    """One record (a dict) or a list of them, from `--json TEXT` or a JSON Lines file
    (`-` for stdin).

    Raises:
        InvalidInputError: the input is not JSON, or not an object or a list (exit 4).
        click BadParameter: the file does not exist (exit 2).
    """
    try:
        if json_input is not None:
            data = json.loads(json_input)
        else:
            if input_file is None:
                raise click_exc.UsageError("give exactly one of --json '{...}' or --input FILE.jsonl")
            fh = sys.stdin if str(input_file) == "-" else open(input_file)  # noqa: SIM115
            with fh:
                data = [json.loads(line) for line in fh if line.strip()]
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"input is not valid JSON: {e}") from None
    except FileNotFoundError:
        raise click_exc.BadParameter(f"no such file: {input_file}") from None
    if not isinstance(data, (dict, list)):
        raise InvalidInputError("input must be a JSON object (one record) or a list of them")
    return data
