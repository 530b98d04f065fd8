"""The author's own words for a model card (`scorehouse package ... --card card.toml`):
intended use, users, out-of-scope uses, ethical considerations, caveats (after Mitchell et
al., "Model Cards for Model Reporting", 2019).

The file is TOML (or JSON, by suffix), not YAML: Python reads both with the standard
library (`tomllib`; the `tomli` backport on 3.10, as the alert rules do), and pyyaml is not
a scorehouse dependency. Packaging stores it in the artifact as canonical JSON under
`CARD_FILE`, so it is listed in the manifest's `files` map with its sha256 like every file:
an edited card is an IntegrityError, as an edited model is. A file:

    intended_use = "Rank customers by churn risk for the retention team's monthly calls."
    users = ["retention analysts", "CRM batch job"]
    out_of_scope = ["credit decisions", "customers outside the EU"]
    ethical_considerations = "Age is not an input; region may proxy for it."
    caveats = ["Trained on 2023 data only."]

Each field is a text or a list of texts; every field is optional.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The card text's entry in an artifact (optional: artifacts without one stay valid).
CARD_FILE = "card/card.json"
#: Longest text accepted per field, in characters (a card is prose, not a data set).
MAX_TEXT = 20_000


@dataclass(frozen=True)
class CardText:
    """The author's sections of a model card; each a tuple of paragraphs or list items."""

    intended_use: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    ethical_considerations: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> CardText:
        """Card text from parsed TOML/JSON.

        Raises:
            UsageError: an unknown field, or a value that is not text or a list of texts.
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UsageError(f"{source}: unknown field(s) {unknown}; a card has "
                             f"{', '.join(known)}")
        return cls(**{name: _texts(data[name], f"{source}: {name}") for name in known
                      if name in data})

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CardText:
        """Read a .toml or .json card file.

        Raises:
            UsageError: no such file, another suffix, unparsable, or as `from_mapping`.
        """
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"no card file {p}")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".toml":
                data: Any = tomllib.loads(text)
            elif p.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise UsageError(f"{p}: a card file is .toml or .json (YAML would need pyyaml, "
                                 "which scorehouse does not depend on)")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"{p}: not valid {p.suffix[1:].upper()}: {e}") from None
        if not isinstance(data, Mapping):
            raise UsageError(f"{p}: a card file holds a table of fields")
        return cls.from_mapping(data, str(p))

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys): what the artifact stores under `CARD_FILE`."""
        return json.dumps({f.name: list(getattr(self, f.name)) for f in fields(self)},
                          sort_keys=True, indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> CardText:
        """The card text `to_bytes` wrote.

        Raises:
            UsageError: not a card's JSON.
        """
        try:
            parsed = json.loads(data)
        except json.JSONDecodeError as e:
            raise UsageError(f"{source}: {CARD_FILE} is not JSON: {e}") from None
        return cls.from_mapping(parsed, source)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def _texts(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise UsageError(f"{where}: expected a text or a list of texts")
    if any(len(v) > MAX_TEXT for v in items):
        raise UsageError(f"{where}: a text longer than {MAX_TEXT} characters")
    return tuple(v.strip() for v in items if v.strip())
