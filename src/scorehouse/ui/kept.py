"""What the console keeps between requests beyond loaded models: the monitoring pages'
computed figures (`MonitorViews`, filled by `monitoring.py`)."""

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
            self._views.pop(key, None)
            self._views[key] = view
            while len(self._views) > VIEWS_KEPT:
                self._views.pop(next(iter(self._views)))
        return view


__all__ = ["VIEWS_KEPT", "VIEW_SECONDS", "MonitorView", "MonitorViews"]
