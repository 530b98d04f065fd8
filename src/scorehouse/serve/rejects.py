"""The rejects part of a server's answers: the first ones, cut short, and every one counted.

A request of bad rows is answered in about what it weighs: at most the server's
`max_rejects` rejects are listed (the scoring core keeps no more), each value and reason
cut to `SHOWN_CHARS`, and all problems are counted by column and reason.
"""

from __future__ import annotations

import reprlib
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..schema import Reject
from ..scorer import Result

#: Longest text of one reject's value or reason in an answer (a value can be megabytes).
SHOWN_CHARS = 200
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = SHOWN_CHARS


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def _reject_dict(r: Reject) -> dict[str, Any]:
    # Reject.to_dict, with long texts cut and containers shown in brief (a repr of a
    # million-element list would cost what the request did, on the answer's side).
    v = r.value
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        v = _short(v)
    elif not isinstance(v, (int, float, bool, type(None))):
        v = _short_repr.repr(v)
    return {"row": r.row, "column": r.column, "reason": _short(r.reason), "value": v}


def rejected(result: Result) -> InvalidInputError:
    """The error of a request with rejected rows: counts and the first five problems."""
    shown = "; ".join(_short(str(r)) for r in result.rejects[:5])
    more = result.n_problems - min(len(result.rejects), 5)
    return InvalidInputError(f"{result.n_rejected} of {result.n_read} row(s) rejected: "
                             f"{shown}{f' (and {more} more)' if more else ''}")


_NO_REJECTS: dict[str, Any] = {"rejects": [], "rejected_rows": 0, "problems": 0,
                               "problems_by_column": {}}


def reject_fields(result: Result | None) -> dict[str, Any]:
    """The rejects part of an answer: the first ones listed (up to the server's
    `max_rejects`), and every problem counted by column and reason (None: no rejects)."""
    if result is None or not result.rejects:
        return _NO_REJECTS
    return {"rejects": [_reject_dict(r) for r in result.rejects],
            "rejected_rows": result.n_rejected, "problems": result.n_problems,
            "problems_by_column": result.problem_counts()}
