"""What a report shows, as typed inputs: `ReportInput`, and `report_input`, which computes
the drift and quality figures from drift states (the windows a server, stream worker or
log reader kept) so a caller needs only the states and the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..monitor import (
    DatasetDrift,
    DriftOptions,
    DriftState,
    QualityReport,
    QualityThresholds,
    Reference,
    dataset_drift,
    input_quality,
)
from ..monitor.resources import Resources

#: When a window began: a datetime, or text such as '2024-05-01'.
WindowStart = datetime | str


def window_text(start: WindowStart) -> str:
    """A window start as a short label ('2024-05-01 10:00' for datetimes)."""
    if isinstance(start, datetime):
        return start.strftime("%Y-%m-%d %H:%M") if (start.hour, start.minute) != (0, 0) \
            else start.strftime("%Y-%m-%d")
    return str(start)


@dataclass(frozen=True)
class ReportInput:
    """Everything one report shows.

    `reference` and `current` hold the distributions plotted (training vs now); `drift`
    and `quality` are `current` against `reference`. The series are optional, oldest
    first: drift and quality of earlier windows, and label metrics per window
    ({'roc_auc': 0.81, ...}) with `performance_reference` the training/holdout figures
    drawn as the line to compare against.
    """

    model: str
    version: str
    reference_label: str
    drift: DatasetDrift
    quality: QualityReport
    reference: Reference
    current: DriftState
    window: str = ""
    drift_series: Sequence[tuple[WindowStart, DatasetDrift]] = ()
    quality_series: Sequence[tuple[WindowStart, QualityReport]] = ()
    performance: Sequence[tuple[WindowStart, Mapping[str, float]]] = ()
    performance_reference: Mapping[str, float] = field(default_factory=dict)
    generated: datetime | None = None
    #: The serving process's memory, CPU and model loads (`monitor.resources`), if read.
    resources: Resources | None = None


def report_input(model: str, version: str | int | None, reference: Reference,
                 current: DriftState, *,
                 windows: Sequence[tuple[WindowStart, DriftState]] = (),
                 performance: Sequence[tuple[WindowStart, Mapping[str, float]]] = (),
                 performance_reference: Mapping[str, float] | None = None,
                 options: DriftOptions | None = None,
                 thresholds: QualityThresholds | None = None,
                 window: str = "") -> ReportInput:
    """A `ReportInput` for `current` against `reference`, with drift and quality computed
    here, and over time for each of `windows` (oldest first) when given.

    Raises:
        SchemaError: a feature's sketches are of different kinds in the two.
    """
    return ReportInput(
        model, "" if version is None else str(version), reference.label,
        dataset_drift(current, reference, options), input_quality(current, reference, thresholds),
        reference, current, window,
        drift_series=[(start, dataset_drift(s, reference, options)) for start, s in windows],
        quality_series=[(start, input_quality(s, reference, thresholds)) for start, s in windows],
        performance=list(performance), performance_reference=dict(performance_reference or {}))
