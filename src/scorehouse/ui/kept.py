"""What the console keeps between requests beyond loaded models: the monitoring pages'
computed figures (`MonitorViews`, filled by `monitoring.py`), and the small LRU (`keep`) the
console's caches share."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..monitor import LoggedWindow

#: Computed monitoring views kept (the most recently computed).
VIEWS_KEPT = 16
#: Seconds a computed view is shown before it is computed again even if nothing changed.
VIEW_SECONDS = 600.0


def keep(cache: dict[Any, Any], key: Any, value: Any, most: int) -> Any:
    """Put `value` in `cache` under `key`, dropping the oldest entries beyond `most`."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > most:
        cache.pop(next(iter(cache)), None)
    return value


@dataclass
class MonitorView:
    """The figures of one monitoring page, as computed at `computed` (UTC).

    `windows`: the log's windows, oldest first; `kinds`: the charts there is something to
    draw for, in page order ("traffic", "drift", "quality", "decay", then one
    "prediction.<column>" per prediction column); `charts`: those drawn so far (SVG text),
    each drawn once, when its image is first asked for.
    """

    computed: dt.datetime
    windows: list[LoggedWindow]
    kinds: list[str]
    made: float  # time.monotonic() when computed
    charts: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MonitorViews:
    """The console's computed monitoring views, by what each was computed from."""

    def __init__(self) -> None:
        self._views: dict[tuple[Any, ...], MonitorView] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> MonitorView | None:
        """The view computed under `key`, unless older than VIEW_SECONDS."""
        with self._lock:
            view = self._views.get(key)
        if view is None or time.monotonic() - view.made > VIEW_SECONDS:
            return None
        return view

    def put(self, key: tuple[Any, ...], view: MonitorView) -> MonitorView:
        """Keep `view` under `key` (dropping the least recently computed beyond VIEWS_KEPT)."""
        with self._lock:
            return keep(self._views, key, view, VIEWS_KEPT)


__all__ = ["VIEWS_KEPT", "VIEW_SECONDS", "MonitorView", "MonitorViews", "keep"]
