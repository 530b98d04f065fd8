"""`LogOptions`: where the prediction log goes and what it keeps, from a `--log-to URL`
string or the environment; the sampling and hashing rules it implies.

    --log-to parquet:                          $SCOREHOUSE_HOME/predictions (the default)
    --log-to /data/predictions                 a Parquet dataset there (or file:///data/...)
    --log-to postgresql://u:p@host/db?table=predictions
    --log-to kafka://host:9092/predictions     (or kafka://host:9092?topic=predictions)
    --log-to 'redis://host:6379/0?stream=predictions&maxlen=1000000'

Options every URL may carry in its query (and their environment variables, read by
`LogOptions.from_env` for servers): `sample` (SCOREHOUSE_LOG_SAMPLE), `exclude`
(SCOREHOUSE_LOG_EXCLUDE, comma-separated input columns), `hash` (SCOREHOUSE_LOG_HASH),
`salt` (SCOREHOUSE_LOG_SALT), `queue` (SCOREHOUSE_LOG_QUEUE, rows), `flush`
(SCOREHOUSE_LOG_FLUSH, seconds), `rotate_mb` (SCOREHOUSE_LOG_ROTATE_MB), `rotate_seconds`
(SCOREHOUSE_LOG_ROTATE_SECONDS). The URL itself comes from SCOREHOUSE_LOG_TO. Other query
keys stay with the sink (`table`, `stream`, `maxlen`, librdkafka options).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ...errors import UsageError

ENV = "SCOREHOUSE_LOG_"
#: Option name -> (environment variable suffix, parser).
_KEYS: dict[str, tuple[str, Any]] = {
    "sample": ("SAMPLE", float), "exclude": ("EXCLUDE", lambda s: _names(s)),
    "hash": ("HASH", lambda s: _names(s)), "salt": ("SALT", str), "queue": ("QUEUE", int),
    "flush": ("FLUSH", float), "rotate_mb": ("ROTATE_MB", float),
    "rotate_seconds": ("ROTATE_SECONDS", float),
}


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


@dataclass(frozen=True)
class LogOptions:
    """What a `PredictionLogger` logs and where.

    Attributes:
        to: the sink URL ("" or "parquet:": the Parquet dataset under $SCOREHOUSE_HOME).
        sample: share of rows kept, 0..1, decided by a hash of the row id, so a given id is
            always kept or always dropped (every process, every run).
        exclude: input columns never logged.
        hash: input columns logged as hex SHA-256 of salt + value (personal data).
        salt: the hashing salt (required when `hash` is set).
        queue: rows the queue holds before new rows are dropped (and counted).
        flush: seconds between drains of the queue into the sink: with kill -9, the rows
            lost are at most those of the last `flush` seconds (plus what a remote sink's
            client still buffers).
        rotate_mb: Parquet file size (MB of Arrow data written) that closes a file.
        rotate_seconds: age in seconds that closes a Parquet file.
    """

    to: str = ""
    sample: float = 1.0
    exclude: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    salt: str = field(default="", repr=False)
    queue: int = 100_000
    flush: float = 1.0
    rotate_mb: float = 128.0
    rotate_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise UsageError(f"log sampling rate {self.sample} is not between 0 and 1")
        if self.hash and not self.salt:
            raise UsageError(f"hashing the logged columns {', '.join(self.hash)} needs a salt "
                             "(unsalted hashes of personal data are easy to reverse): set "
                             f"{ENV}SALT or add salt=... to the log URL")
        if set(self.hash) & set(self.exclude):
            raise UsageError("columns both excluded from and hashed in the log: "
                             + ", ".join(sorted(set(self.hash) & set(self.exclude))))
        if self.queue < 1 or self.flush <= 0 or self.rotate_mb <= 0 or self.rotate_seconds <= 0:
            raise UsageError("log queue, flush interval and rotation limits must be positive")

    @classmethod
    def parse(cls, url: str | None = None, **overrides: Any) -> LogOptions:
        """Options from a `--log-to` URL whose query may carry the options listed in the
        module doc; `overrides` (keyword = attribute) win over the URL.

        Raises:
            UsageError: an option that does not parse or is out of range.
        """
        to, found = _split(url or "")
        return cls(**{"to": to, **found, **overrides})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> LogOptions | None:
        """Options from SCOREHOUSE_LOG_TO and the other SCOREHOUSE_LOG_* variables, or None
        when SCOREHOUSE_LOG_TO is unset (logging off). Variables win over the URL's query;
        `overrides` win over both.

        Raises:
            UsageError: a variable that does not parse or is out of range.
        """
        env = os.environ if env is None else env
        url = env.get(ENV + "TO")
        if url is None:
            return None
        to, found = _split(url)
        found.update({key: _parsed(key, env[ENV + suffix], f"in {ENV}{suffix}")
                      for key, (suffix, _) in _KEYS.items() if env.get(ENV + suffix)})
        return cls(**{"to": to, **found, **overrides})

    def keep(self, ids: Sequence[str]) -> np.ndarray:
        """Boolean mask of the `ids` sampling keeps (all True at sample=1)."""
        if self.sample >= 1.0:
            return np.ones(len(ids), bool)
        cut = int(self.sample * 2 ** 64)
        return np.fromiter((_id_hash(i) < cut for i in ids), bool, len(ids))

    def digest(self, values: Sequence[Any]) -> list[str | None]:
        """Hex SHA-256 of salt + each value's text (None stays None)."""
        salt = self.salt.encode()
        return [None if v is None else hashlib.sha256(salt + str(v).encode()).hexdigest()
                for v in values]


def _split(url: str) -> tuple[str, dict[str, Any]]:
    """(the URL without the log options of its query, those options parsed)."""
    parts = urlsplit(url)
    found: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _KEYS:
            found[key] = _parsed(key, value, f"in the log URL {url!r}")
        else:
            rest.append((key, value))
    return (urlunsplit(parts._replace(query=urlencode(rest))) if url else ""), found


def _id_hash(row_id: str) -> int:
    # BLAKE2b: stable across processes and Python versions (hash() is salted per process).
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "big")


def _parsed(key: str, text: str, where: str) -> Any:
    try:
        return _KEYS[key][1](text)
    except ValueError:
        raise UsageError(f"log option {key}={text!r} {where} is not a valid value") from None


__all__ = ["LogOptions"]
