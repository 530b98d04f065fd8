"""The prediction log of a deployment's calls, as a channel that scores tables (batch, the
stream worker) writes it: every role's rows under the request's id, with the deployment
and the role.

    log = RoutedLog(live, "churn-api")
    around = log.around(ids)                 # entered around each model call
    with around("shadow", "churn/4", scorer, rows):
        scorer.predict(table.take(rows))      # logged under ids[rows], role shadow
    log.unscored("decoy", records, ids)      # the inputs as received

The decoy archives the inputs as received and the default answers without a model: there
is no scoring call to hook, so `unscored` logs them. Their `model` in the log is the
deployment's name (there is no model), `version` null, `runtime` "none", and
`prediction.value` the default's answer (null for the decoy). The record as received is
one JSON text column, `input.@record` (RECORD, as `serve` logs its decoy): typed
`input.<column>` columns would clash with the models' coerced ones (a CSV's text "42"
beside a model's 42.0) when the log is read across models.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import Any

import numpy as np

from ..runtime import Output
from ..scorer import Result, ScoreEvent, Scorer
from .live import LiveMonitor, row_ids, row_role

#: The input column of a decoy's or default's row in the log (`input.@record`): the record
#: as received, JSON text (as the server logs its decoy).
RECORD = "@record"


def unscored_event(deployment: str, records: Sequence[Mapping[str, Any]],
                   values: np.ndarray | None = None) -> ScoreEvent:
    """The log's event for rows no model scored (the decoy's, the default's): `records` as
    received (logged as JSON in `input.@record`), `values` the default's answer per row
    (None for the decoy: null).

    Raises:
        ValueError: `values` and `records` of different lengths.
    """
    n = len(records)
    if values is None:  # the log's prediction columns come from a regression's values: nulls
        values = np.full(n, np.nan)
    if len(values) != n:
        raise ValueError(f"unscored_event: {n} records but {len(values)} values")
    received = np.asarray([json.dumps(_nulls(r), default=str) for r in records], dtype=object)
    result = Result(deployment, None, "regression", None, n, np.arange(n, dtype=np.int64),
                    Output(values=values), runtime="none")
    # A mapping that is not a dict: the log converts it as whole columns (its one-row path
    # expects scalars and a model's outputs).
    return ScoreEvent(deployment, None, MappingProxyType({RECORD: received}), result)


def default_answers(values: Sequence[Any]) -> np.ndarray:
    """The default's answers as the log's `values` of `unscored_event`: floats when every
    one is a number, else the values as they are (a label)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return np.asarray(values, dtype=float if numeric else object)


def _nulls(record: Mapping[str, Any]) -> dict[str, Any]:
    """NaN and infinities as null: JSON has no token for them."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in record.items()}


class RoutedLog:
    """The log of one deployment's calls through a channel's `LiveMonitor` (whose hook
    reads the ids and the route that `around` sets)."""

    def __init__(self, live: LiveMonitor, deployment: str) -> None:
        self.live, self.deployment = live, deployment

    def around(self, ids: Sequence[str]
               ) -> Callable[[str, str, Scorer, np.ndarray, bool], AbstractContextManager[Any]]:
        """For a table whose row i has id `ids[i]`: a context manager factory (role,
        reference, scorer, the table rows the call scores, whether the deployment made the
        call) that watches the scorer and logs the call under those rows' ids and the
        role; a call the deployment did not make (a batch's `--all-roles` extras) is not
        logged."""
        @contextlib.contextmanager
        def call(role: str, ref: str, scorer: Scorer, rows: np.ndarray,
                 deployed: bool) -> Iterator[None]:
            self.live.watch(scorer)  # once per scorer (a deployment change loads others)
            if not deployed:
                with row_role(self.deployment, ""):
                    yield
                return
            with row_ids([ids[r] for r in rows.tolist()]), row_role(self.deployment,
                                                                       str(role)):
                yield
        return call

    def unscored(self, role: str, records: Sequence[Mapping[str, Any]], ids: Sequence[str],
                 values: np.ndarray | None = None) -> None:
        """Log rows no model scored: the decoy's `records`; the default's `values`."""
        if self.live.logger is None or not len(ids):
            return
        self.live.logger.log(unscored_event(self.deployment, records, values), ids=ids,
                             deployment=self.deployment, role=str(role))


__all__ = ["RECORD", "RoutedLog", "default_answers", "unscored_event"]
