"""Alert rules, read from one TOML file.

TOML because Python reads it with the standard library (`tomllib`; the `tomli` backport
on 3.10) and it keeps comments; pyyaml is not a scorehouse dependency. The file:

    [defaults]              # optional; every rule may override these
    windows = 3             # consecutive breaching windows before a rule fires
    resolve_windows = 3     # consecutive OK windows before it resolves (default: windows)
    severity = "warning"

    [webhook]               # optional: where firing/resolved events are POSTed as JSON
    url = "https://hooks.example.com/scorehouse"
    timeout = 5.0           # seconds per try
    retries = 3             # tries after the first, on connection errors, 429 and 5xx
    headers = { Authorization = "Bearer ..." }

    [[rule]]
    name = "monthly charges drift"
    figure = "drift.score"          # see monitor.figures for every figure
    column = "monthly_charges"
    op = ">="
    threshold = 1.0

    [[rule]]
    name = "AUC decay"
    figure = "metric.roc_auc"
    op = "<"
    threshold = 0.7
    windows = 2
    severity = "critical"

Every mistake raises `UsageError` naming the file, the line of the rule's `[[rule]]`
header, the rule and the field.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UsageError
from .figures import check_figure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RULE_FIELDS = {"name", "figure", "column", "op", "threshold", "windows", "resolve_windows",
               "severity"}
DEFAULT_FIELDS = {"windows", "resolve_windows", "severity"}
WEBHOOK_FIELDS = {"url", "timeout", "retries", "headers"}
SEVERITIES = ("info", "warning", "critical")


class Op(str, Enum):
    """How a figure is compared with a rule's threshold; true means breached."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def breached(self, value: float, threshold: float) -> bool:
        """Whether `value` breaches `threshold` (NaN never does)."""
        if self is Op.GT:
            return value > threshold
        if self is Op.GE:
            return value >= threshold
        if self is Op.LT:
            return value < threshold
        return value <= threshold


@dataclass(frozen=True)
class AlertRule:
    """One rule: `figure` (of `column`) compared by `op` with `threshold`. It fires after
    `windows` consecutive breaching windows and resolves after `resolve_windows`
    consecutive OK ones. `line` is where the rule starts in its file (0: not from a file)."""

    name: str
    figure: str
    op: Op
    threshold: float
    column: str | None = None
    windows: int = 1
    resolve_windows: int = 1
    severity: str = "warning"
    line: int = 0

    def __post_init__(self) -> None:
        problem = check_figure(self.figure, self.column)
        if problem:
            raise UsageError(f"rule {self.name!r}: field 'figure': {problem}")
        if self.windows < 1 or self.resolve_windows < 1:
            raise UsageError(f"rule {self.name!r}: 'windows' and 'resolve_windows' must be >= 1")

    def describe(self) -> str:
        """The rule as text, e.g. 'drift.score[age] >= 1'."""
        of = f"[{self.column}]" if self.column else ""
        return f"{self.figure}{of} {self.op.value} {self.threshold:g}"


@dataclass(frozen=True)
class Webhook:
    """Where alerts are POSTed: `url`, `timeout` seconds per try, `retries` after the first
    try (on connection errors, 429 and 5xx), extra `headers`."""

    url: str
    timeout: float = 5.0
    retries: int = 3
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, and where their alerts go."""

    rules: tuple[AlertRule, ...]
    webhook: Webhook | None = None
    source: str = ""


def load_rules(path: str | Path) -> RuleSet:
    """The rule set of a TOML file (format in the module docstring).

    Raises:
        NotFoundError: no such file.
        UsageError: a TOML syntax error (with its line and column) or a bad rule, naming
            the rule, its line and the field.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"alert rules file {str(p)!r} does not exist")
    return parse_rules(p.read_text(encoding="utf-8"), source=str(p))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """The rule set of TOML `text`; `source` names it in errors.

    Raises:
        UsageError: as `load_rules`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{source}: not valid TOML: {e}") from None
    unknown = set(data) - {"defaults", "webhook", "rule"}
    if unknown:
        raise UsageError(f"{source}: unknown section(s) {sorted(unknown)}; "
                         "use [defaults], [webhook] and [[rule]]")
    defaults = _table(data.get("defaults", {}), f"{source}: [defaults]", DEFAULT_FIELDS)
    rules_data = data.get("rule", [])
    if not isinstance(rules_data, list) or not rules_data:
        raise UsageError(f"{source}: no rules; add at least one [[rule]] table")
    lines = _rule_lines(text)
    rules = []
    for i, raw in enumerate(rules_data):
        line = lines[i] if i < len(lines) else 0
        where = f"{source}:{line}: rule #{i + 1}" if line else f"{source}: rule #{i + 1}"
        rules.append(_rule(raw, defaults, where, line))
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{source}: rule names must be unique (they key the alert state): "
                         f"{twice} used more than once")
    webhook = data.get("webhook")
    return RuleSet(tuple(rules), None if webhook is None else _webhook(webhook, source), source)


def _rule_lines(text: str) -> list[int]:
    """The 1-based line of each `[[rule]]` header, in order (the i-th is rule i's)."""
    return [n for n, line in enumerate(text.splitlines(), 1)
            if line.strip().replace(" ", "").startswith("[[rule]]")]


def _table(raw: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a table")
    unknown = set(raw) - allowed
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {sorted(unknown)}; "
                         f"allowed: {sorted(allowed)}")
    return raw


def _rule(raw: Any, defaults: Mapping[str, Any], where: str, line: int) -> AlertRule:
    """One rule table, checked field by field."""
    t = _table(raw, where, RULE_FIELDS)
    name = t.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where}: field 'name' is required (a non-empty text)")
    where = f"{where} {name!r}"
    figure = _get(t, "figure", str, where)
    column = t.get("column")
    if column is not None and not isinstance(column, str):
        raise UsageError(f"{where}: field 'column' must be a text")
    problem = check_figure(figure, column)
    if problem:
        raise UsageError(f"{where}: field 'figure': {problem}")
    op_text = _get(t, "op", str, where)
    try:
        op = Op(op_text)
    except ValueError:
        raise UsageError(f"{where}: field 'op' is {op_text!r}; use one of "
                         f"{[o.value for o in Op]}") from None
    threshold = _get(t, "threshold", (int, float), where)
    if isinstance(threshold, bool) or not math.isfinite(threshold):
        raise UsageError(f"{where}: field 'threshold' must be a finite number")
    merged = {**defaults, **t}
    windows = _count(merged.get("windows", 1), "windows", where)
    resolve = _count(merged.get("resolve_windows", windows), "resolve_windows", where)
    severity = merged.get("severity", "warning")
    if severity not in SEVERITIES:
        raise UsageError(f"{where}: field 'severity' is {severity!r}; use one of {SEVERITIES}")
    return AlertRule(name, figure, op, float(threshold), column, windows, resolve, severity,
                     line)


def _get(t: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in t:
        raise UsageError(f"{where}: field {key!r} is required")
    value = t[key]
    if not isinstance(value, kind):
        raise UsageError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _count(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{where}: field {key!r} must be a whole number >= 1, got {value!r}")
    return value


def _webhook(raw: Any, source: str) -> Webhook:
    t = _table(raw, f"{source}: [webhook]", WEBHOOK_FIELDS)
    where = f"{source}: [webhook]"
    url = _get(t, "url", str, where)
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{where}: field 'url' must be an http:// or https:// URL, got {url!r}")
    timeout = float(_get(t, "timeout", (int, float), where)) if "timeout" in t else 5.0
    retries = t.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UsageError(f"{where}: field 'retries' must be a whole number >= 0, got {retries!r}")
    headers = t.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise UsageError(f"{where}: field 'headers' must be a table of texts")
    if timeout <= 0:
        raise UsageError(f"{where}: field 'timeout' must be > 0 seconds")
    return Webhook(url, timeout, retries, dict(headers))
