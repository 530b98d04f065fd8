"""The stream worker's scoring through a deployment (`scorehouse stream --deployment NAME`).

A batch of updated profiles is one table for `routing.table.score_table`: each profile is
answered as the deployment answers a request (sticky split by the spec's field, else the
event id; routes; fallbacks; the default), with one call per model; the shadows and
canaries score every profile, the decoy archives it. As in batch, there is no deadline:
the worker is not answering a caller, and each event's answer does not depend on how busy
the machine was (the lag it adds is the worker's lag metric).

What is written: the profile gets `<deployment>_label`, `<deployment>_score`,
`<deployment>_answered_by` (model/version, or "default") and `<deployment>_role` (and
`<deployment>_event_id` for the newest event); the output message says who answered:
`deployment`, `model`, `version`, `role`, `answered_by`, `fallback`, `fallback_reason`,
beside `label`, `score` and `probabilities` as for one model. A profile its answering model
refuses, or that nobody answers, is a poison event (retried, then dead-lettered).

Every role's call is logged under the event's id (`monitor.routed`). The deployment is
followed in the registry (`routing.following`): the worker polls it before each batch, so
one batch is scored with one spec, and a change loses or repeats no event.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from ..monitor.live import LiveMonitor
from ..monitor.routed import RoutedLog, default_answers
from ..routing import Answer, Role
from ..routing.following import Following
from ..routing.table import DEFAULT, score_table


class DeployedScoring:
    """Scores the worker's profiles through `following.rz`, logging through `live`."""

    def __init__(self, following: Following, live: LiveMonitor | None = None) -> None:
        self.following = following
        self.name = following.rz.spec.name
        self.log = RoutedLog(live, self.name) if live is not None else None

    def score(self, table: pa.Table, ids: list[str]) -> tuple[dict[int, Answer], dict[int, str]]:
        """(answers by row, poison reasons by row) for the profiles in `table` (row i is
        event `ids[i]`'s)."""
        around = self.log.around(ids) if self.log is not None else None
        answers = score_table(self.following.rz, table, ids, around=around)
        out: dict[int, Answer] = {}
        reasons: dict[int, str] = dict(answers.problems)
        for i in range(answers.n):
            a = answers.answer(i)
            if a is None:
                continue
            if a.result is not None and a.result.rejects:
                reasons[i] = "; ".join(j.problem for j in a.result.rejects)
            else:
                out[i] = a
        if self.log is not None:
            self._log_unscored(answers, table, ids)
        return out, reasons

    def _log_unscored(self, answers: Any, table: pa.Table, ids: list[str]) -> None:
        assert self.log is not None
        if len(answers.decoy):
            rows = answers.decoy.tolist()
            self.log.unscored(Role.DECOY.value, table.take(pa.array(rows)).to_pylist(),
                              [ids[r] for r in rows])
        rows = [r for r in sorted(answers.values) if answers.who[r] == DEFAULT]
        if rows:
            self.log.unscored(Role.DEFAULT.value, table.take(pa.array(rows)).to_pylist(),
                              [ids[r] for r in rows],
                              default_answers([answers.values[r] for r in rows]))

    def fields(self, entity: str, event_id: str, answer: Answer, newest: bool
               ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the profile fields written, the output message) of one event's answer."""
        d = self.name
        label, score, probabilities = self._value(answer)
        answered_by = "default" if answer.model is None else answer.model \
            if answer.version is None else f"{answer.model}/{answer.version}"
        written = {f"{d}_label": label, f"{d}_score": score, f"{d}_answered_by": answered_by,
                   f"{d}_role": answer.role.value}
        if newest:
            written[f"{d}_event_id"] = event_id
        out = {"entity": entity, "event_id": event_id, "deployment": d,
               "model": answer.model or "",
               "version": "" if answer.version is None else answer.version,
               "role": answer.role.value, "answered_by": answered_by,
               "fallback": answer.fallback, "fallback_reason": answer.reason,
               "label": label, "score": score,
               **({"probabilities": probabilities} if probabilities else {}),
               "scored_at": datetime.now(timezone.utc).isoformat()}
        return written, out

    def _value(self, answer: Answer) -> tuple[Any, Any, Any]:
        """(label, score, probabilities) of an answer: a model's record (its headline
        score), or the default's value (a number is the score, else the label)."""
        if answer.result is None:
            v = answer.value
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            return ("" if number or v is None else v), (v if number else ""), None
        record = answer.result.to_records()[0]
        assert answer.ref is not None  # a model answered
        score = self.following.rz.scorers.get(answer.ref).headline(record)
        return record.get("label", ""), score, record.get("probabilities")


__all__ = ["DeployedScoring"]
