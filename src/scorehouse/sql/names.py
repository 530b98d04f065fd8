"""The SQL names of one model: functions, result type, trigger and profile columns.

Every database object scorehouse creates for a model is named from one *stem*, derived
from the model's name by `names_for`:

- a name that is already a plain SQL word (lower-case ASCII letters, digits and `_`,
  at most `STEM_BYTES` long) is its own stem: `churn` -> `score_churn`;
- any other name is sanitised (lower-cased, every other character `_`), cut to leave room,
  and given `_` + the first 8 hex digits of the SHA-256 of the original name:
  `churn-a` -> `churn_a_5d0b1bd2`, `Churn` -> `churn_<hash>`.

So two names that sanitise alike (`churn-a`, `churn_a`, `Churn.A`) or share a long prefix
get different stems, the same name always gets the same stem, and every identifier built
from a stem (the longest is `_score_<stem>_batches`) fits PostgreSQL's 63-byte limit, which
would otherwise cut suffixes off silently. The stem is ASCII whatever the name holds, and
identifiers are always quoted where they are used, so quotes, SQL keywords or unicode in a
name cannot reach SQL as anything but part of a name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: PostgreSQL keeps the first NAMEDATALEN - 1 = 63 bytes of an identifier.
MAX_IDENTIFIER = 63
#: The longest prefix + suffix put around a stem: `_score_` + `_batches`.
_AROUND = len("_score_") + len("_batches")
#: The longest stem, so that every identifier built from it fits in MAX_IDENTIFIER.
STEM_BYTES = MAX_IDENTIFIER - _AROUND
_HASH = 8
_PLAIN = re.compile(r"[a-z0-9_]+")

#: What `db install` writes in COMMENT ON FUNCTION, followed by the model's name: the
#: catalog's record of which model a function scores.
COMMENT_PREFIX = "scorehouse model: "

#: The columns a trigger adds to the profile table: suffix -> SQL type.
SCORE_COLUMNS = {"label": "text", "score": "double precision", "prediction": "jsonb",
                 "version": "integer", "scored_at": "timestamptz", "error": "text"}


def sanitise(name: str) -> str:
    """`name` lower-cased with every character but ASCII letters, digits and `_` as `_`."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def fit(name: str, room: int) -> str:
    """`name` if it is plain and at most `room` bytes, else its sanitised start + a hash.

    The hash is of the original `name`, so distinct names give distinct results (up to a
    32-bit hash: a collision is caught by the catalog check at install).
    """
    if _PLAIN.fullmatch(name) and len(name) <= room:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH]
    return f"{sanitise(name)[:room - _HASH - 1]}_{digest}"


@dataclass(frozen=True)
class SqlNames:
    """The identifiers of one model's objects (unquoted; quote them with sql.Identifier)."""

    model: str
    stem: str

    @property
    def function(self) -> str:
        """`score_<stem>(col, ...)`: one typed row."""
        return f"score_{self.stem}"

    @property
    def query(self) -> str:
        """`score_<stem>_query(query, key[, batch_rows])`: typed rows, set-based."""
        return f"score_{self.stem}_query"

    @property
    def batches(self) -> str:
        """`_score_<stem>_batches(...)`: the PL/Python half of the set-based function."""
        return f"_score_{self.stem}_batches"

    @property
    def result_type(self) -> str:
        """The composite type `score_<stem>` returns."""
        return f"score_{self.stem}_result"

    @property
    def trigger(self) -> str:
        """The trigger on an events table that feeds this model's profiles."""
        return f"scorehouse_{self.stem}"

    def trigger_function(self, events: str) -> str:
        """The trigger function for events table `events` (schema-qualified or not)."""
        return fit(f"on_{events}_{self.stem}", MAX_IDENTIFIER)

    def column(self, suffix: str) -> str:
        """A profile column: `<stem>_label`, `<stem>_score`, … (see SCORE_COLUMNS)."""
        return f"{self.stem}_{suffix}"

    @property
    def comment(self) -> str:
        """The COMMENT ON FUNCTION that records which model a function scores."""
        return COMMENT_PREFIX + self.model


def names_for(model: str) -> SqlNames:
    """The SQL names of model `model`: stable, distinct for distinct names, each fitting
    in 63 bytes (see the module docstring)."""
    return SqlNames(model, fit(model, STEM_BYTES))
