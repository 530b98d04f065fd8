"""Alerts: rules (`alert_rules`) tested against the figures of each window (`figures`),
firing after N consecutive breaching windows and resolving after N consecutive OK ones.

The streaks live in an `AlertState`, kept as JSON between runs (by default
$SCOREHOUSE_HOME/monitor/alerts/<model>.json), so a CI job or cron run that checks one
window at a time still counts consecutive windows. Firing and resolved events (`Alert`)
go to the Python log (logger 'scorehouse.monitor.alerts'), to a webhook (one HTTP POST of
JSON per run, retried), and into a `CheckResult` whose `exit_code` a CI job exits with:

| exit code | meaning |
|---|---|
| 0 | no rule firing, every delivery made |
| 1 (`EXIT_FIRING`) | at least one rule firing after the last window |
| 7 (`EXIT_UNDELIVERED`) | nothing firing, but a webhook delivery failed after its retries |

    rules = load_rules("alerts.toml")
    result = run_check([WindowFigures(start=..., drift=..., metrics={"roc_auc": 0.68})],
                       rules, model="churn")
    sys.exit(result.exit_code)
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from .. import config
from ..errors import EXIT_ALERT_FIRING, EXIT_ALERT_UNDELIVERED, UsageError
from .alert_rules import AlertRule, RuleSet, Webhook
from .figures import WindowFigures, figure_value

log = logging.getLogger("scorehouse.monitor.alerts")

EXIT_OK = 0
EXIT_FIRING = EXIT_ALERT_FIRING
EXIT_UNDELIVERED = EXIT_ALERT_UNDELIVERED
STATE_FORMAT = 1


class AlertStatus(str, Enum):
    """An alert event: a rule started firing, or stopped."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """A rule changing state in `window`: `value` of its figure there, and `streak`, the
    consecutive windows that made it change."""

    rule: str
    status: AlertStatus
    severity: str
    figure: str
    column: str | None
    op: str
    threshold: float
    value: float
    window: str
    streak: int
    model: str = ""

    @property
    def message(self) -> str:
        """One line for people, e.g. 'FIRING churn: AUC decay: metric.roc_auc = 0.68 < 0.7
        (2 windows)'."""
        of = f"[{self.column}]" if self.column else ""
        verb = self.op if self.status is AlertStatus.FIRING else f"no longer {self.op}"
        model = f"{self.model}: " if self.model else ""
        return (f"{self.status.value.upper()} {model}{self.rule}: {self.figure}{of} = "
                f"{self.value:.4g} {verb} {self.threshold:g} ({self.streak} window"
                f"{'s' if self.streak != 1 else ''}"
                f"{', up to ' + self.window if self.window else ''})")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the webhook's and --json's shape)."""
        return {**asdict(self), "status": self.status.value, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        """The event `to_dict` wrote."""
        fields = {k: v for k, v in d.items() if k != "message"}
        return cls(**{**fields, "status": AlertStatus(d["status"])})


@dataclass
class RuleState:
    """One rule's streaks: `breaching` / `ok` consecutive windows, whether it is `firing`,
    since which window, and the last value seen."""

    firing: bool = False
    breaching: int = 0
    ok: int = 0
    since: str | None = None
    value: float | None = None


@dataclass
class AlertState:
    """Every rule's streaks for one model, kept between runs as JSON (`save`/`load`), the
    events a webhook has not taken yet (`pending`, sent again by the next run), and
    `checked_until`: the time (ISO) of the newest logged row a check has counted, so the
    next `monitor check` counts only rows logged after it."""

    model: str = ""
    rules: dict[str, RuleState] = field(default_factory=dict)
    updated: str | None = None
    pending: list[Alert] = field(default_factory=list)
    checked_until: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; `from_json` reads it back."""
        return {"format": STATE_FORMAT, "model": self.model, "updated": self.updated,
                "rules": {k: asdict(v) for k, v in self.rules.items()},
                "pending": [a.to_dict() for a in self.pending],
                "checked_until": self.checked_until}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AlertState:
        """The state `to_json` wrote.

        Raises:
            UsageError: data of another format.
        """
        if d.get("format") != STATE_FORMAT:
            raise UsageError(f"alert state format {d.get('format')!r} is not {STATE_FORMAT}")
        return cls(str(d.get("model", "")), {k: RuleState(**v) for k, v in d["rules"].items()},
                   d.get("updated"), [Alert.from_dict(a) for a in d.get("pending", [])],
                   d.get("checked_until"))

    @classmethod
    def load(cls, path: str | Path, model: str = "") -> AlertState:
        """The state saved at `path`, or an empty one when there is no file yet.

        Raises:
            UsageError: a file that is not a saved alert state.
        """
        p = Path(path)
        if not p.exists():
            return cls(model)
        try:
            return cls.from_json(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{p}: not an alert state file ({e}); remove it to start over"
                             ) from None

    def save(self, path: str | Path) -> None:
        """Write the state to `path` atomically (a reader never sees half a file)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        os.replace(tmp, p)


def state_path(model: str) -> Path:
    """Where a model's alert state is kept: $SCOREHOUSE_HOME/monitor/alerts/<model>.json.

    Raises:
        UsageError: a model name that is not a plain file name.
    """
    if not model or model in (".", "..") or "/" in model or "\\" in model:
        raise UsageError(f"model name {model!r} cannot name an alert state file")
    return config.home() / "monitor" / "alerts" / f"{model}.json"


@dataclass(frozen=True)
class Delivery:
    """One delivery of a run's alerts: `target` (a URL, or 'log'), whether it was `ok`,
    after how many `attempts`, the last HTTP `status` and `error`."""

    target: str
    ok: bool
    attempts: int = 1
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """What a check found: the `alerts` (events) of these windows in order, the rules
    `firing` after the last window, those `breaching` in it and those with `no_data`,
    the new `state`, and the `deliveries` made (filled by `run_check`)."""

    alerts: tuple[Alert, ...]
    firing: tuple[str, ...]
    breaching: tuple[str, ...]
    no_data: tuple[str, ...]
    state: AlertState
    deliveries: tuple[Delivery, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 all clear, 1 a rule firing, 7 a failed delivery (table in the module doc)."""
        if self.firing:
            return EXIT_FIRING
        if any(not d.ok for d in self.deliveries):
            return EXIT_UNDELIVERED
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"exit_code": self.exit_code, "firing": list(self.firing),
                "breaching": list(self.breaching), "no_data": list(self.no_data),
                "alerts": [a.to_dict() for a in self.alerts],
                "deliveries": [asdict(d) for d in self.deliveries]}


def check(window_figures: WindowFigures | Sequence[WindowFigures],
          rules: RuleSet | Sequence[AlertRule], state: AlertState) -> CheckResult:
    """Test every rule against each window in order (oldest first) and advance its
    streaks; `state` is left as it was (the new one is `result.state`).

    A window without data for a rule's figure leaves that rule's streaks as they are.

    Raises:
        UsageError: a rule names a column the window's drift or quality does not have.
    """
    windows = [window_figures] if isinstance(window_figures, WindowFigures) else window_figures
    rule_list = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
    new = {r.name: replace(state.rules.get(r.name, RuleState())) for r in rule_list}
    alerts: list[Alert] = []
    breaching: list[str] = []
    no_data: list[str] = []
    for window in windows:
        breaching, no_data = [], []
        for rule in rule_list:
            value = figure_value(window, rule.figure, rule.column)
            if value is None:
                no_data.append(rule.name)
                continue
            event = _advance(rule, new[rule.name], value, window, state.model)
            if rule.op.breached(value, rule.threshold):
                breaching.append(rule.name)
            if event is not None:
                alerts.append(event)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = AlertState(state.model, new, now, list(state.pending), state.checked_until)
    firing = tuple(name for name, s in new.items() if s.firing)
    return CheckResult(tuple(alerts), firing, tuple(breaching), tuple(no_data), out)


def _advance(rule: AlertRule, s: RuleState, value: float, window: WindowFigures,
             model: str) -> Alert | None:
    """Count one window into `s`; the event when the rule fires or resolves."""
    s.value = value
    if rule.op.breached(value, rule.threshold):
        s.breaching, s.ok = s.breaching + 1, 0
        if not s.firing and s.breaching >= rule.windows:
            s.firing, s.since = True, window.label or None
            return _event(rule, AlertStatus.FIRING, value, window, s.breaching, model)
    else:
        s.breaching, s.ok = 0, s.ok + 1
        if s.firing and s.ok >= rule.resolve_windows:
            s.firing, s.since = False, None
            return _event(rule, AlertStatus.RESOLVED, value, window, s.ok, model)
    return None


def _event(rule: AlertRule, status: AlertStatus, value: float, window: WindowFigures,
           streak: int, model: str) -> Alert:
    return Alert(rule.name, status, rule.severity, rule.figure, rule.column, rule.op.value,
                 rule.threshold, value, window.label, streak, model)


def log_alerts(alerts: Sequence[Alert]) -> Delivery:
    """Write each event to the log: firing at WARNING (ERROR when critical), resolved at
    INFO."""
    for a in alerts:
        if a.status is AlertStatus.RESOLVED:
            level = logging.INFO
        else:
            level = logging.ERROR if a.severity == "critical" else logging.WARNING
        log.log(level, "%s", a.message, extra={"alert": a.to_dict()})
    return Delivery("log", True)


def post_webhook(hook: Webhook, alerts: Sequence[Alert], model: str = "",
                 backoff: float = 0.5) -> Delivery:
    """POST the events as one JSON document ({'source', 'model', 'status', 'alerts'}) to
    `hook.url`; retried `hook.retries` times on connection errors, timeouts, 429 and 5xx,
    waiting `backoff` seconds, doubled each time. Never raises: a failure is logged at
    ERROR and returned."""
    status = "firing" if any(a.status is AlertStatus.FIRING for a in alerts) else "resolved"
    body = json.dumps({"source": "scorehouse", "model": model, "status": status,
                       "alerts": [a.to_dict() for a in alerts]}).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "scorehouse-alerts",
               **hook.headers}
    code: int | None = None
    error = ""
    for attempt in range(1, hook.retries + 2):
        request = urllib.request.Request(hook.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout) as response:
                return Delivery(hook.url, True, attempt, int(response.status))
        except urllib.error.HTTPError as e:
            code, error = e.code, f"HTTP {e.code} {e.reason}"
            if e.code != 429 and e.code < 500:  # the receiver refuses this body: no retry
                break
        except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out
            code, error = None, str(getattr(e, "reason", e))
        if attempt <= hook.retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    log.error("alert webhook %s failed after %d tries: %s", hook.url, attempt, error)
    return Delivery(hook.url, False, attempt, code, error)


def run_check(window_figures: WindowFigures | Sequence[WindowFigures],
              rules: RuleSet | Sequence[AlertRule], model: str,
              path: str | Path | None = None, backoff: float = 0.5,
              until: str | None = None) -> CheckResult:
    """`check` with its state read from and saved to `path` (default `state_path(model)`),
    and the events delivered to the log and the rule set's webhook: what
    `scorehouse monitor check` runs. Events the webhook did not take are kept in the state
    and sent again, before the new ones, by the next run. `until` (ISO time of the newest
    logged row in these windows) is saved as the state's `checked_until`.

    Raises:
        UsageError: as `check`, or a state file that is not one.
    """
    where = Path(path) if path is not None else state_path(model)
    state = AlertState.load(where, model)
    state.model = model
    result = check(window_figures, rules, state)
    deliveries = [log_alerts(result.alerts)]
    hook = rules.webhook if isinstance(rules, RuleSet) else None
    outbox = [*result.state.pending, *result.alerts]
    result.state.pending = []
    if until is not None:
        result.state.checked_until = until
    if outbox and hook is not None:
        sent = post_webhook(hook, outbox, model, backoff)
        deliveries.append(sent)
        if not sent.ok:
            result.state.pending = outbox
    result.state.save(where)
    return replace(result, deliveries=tuple(deliveries))
