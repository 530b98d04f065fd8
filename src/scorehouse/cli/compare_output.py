"""`scorehouse deploy compare`: run `evaluation.compare_deployment` and print it (tables
for people, the `DeploymentComparison`'s `to_dict()` with --json), and with `-o` write the
HTML page of `reports.build_comparison_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import open_registry
from .output import console, emit, figure, table

#: Quantile levels printed; --json and the HTML page have them all.
LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:+.3g}, {high:+.3g}]"


def compare(name: str, *, since: str | None, until: str | None, window: str,
            labels: Path | None, id_column: str | None, target: str | None,
            positive: str | None, against: str, source: str | None, output: Path | None,
            as_json: bool) -> None:
    """The command's work (see `deploying.deploy_compare`).

    Raises:
        NotFoundError: no logged row of the deployment; no labels file.
        UsageError: --id/--target without --labels or the reverse; a bad time or window.
    """
    from ..errors import UsageError
    from ..evaluation.compare import TRAINING, compare_deployment
    from ..monitor import Labels, parse_time

    if labels is None and (id_column or target):
        raise UsageError("--id and --target go with --labels FILE")
    if labels is not None and not (id_column and target):
        raise UsageError("--labels needs --id (the request id column) and --target")
    result = compare_deployment(
        name, source=source, since=parse_time(since) if since else None,
        until=parse_time(until) if until else None, window=window,
        labels=Labels(labels, str(id_column), str(target)) if labels is not None else None,
        positive=positive, canary_reference=against,
        registry=open_registry() if against == TRAINING else None)
    if output is not None:
        from ..reports.comparison import build_comparison_report

        build_comparison_report(result, output)
    emit(result.to_dict() | ({"report": str(output)} if output else {}), as_json,
         lambda: _print(result, output))


def _names(result: Any) -> dict[str, str]:
    """A short name per arm for the tables: its role when no other arm has that role, else
    'role model/version' (the models table maps each to its model)."""
    roles = [a.role for a in result.arms]
    return {a.name: a.role if roles.count(a.role) == 1 else a.name for a in result.arms}


def _print(result: Any, output: Path | None) -> None:
    c = result.counts
    answers = ", ".join(f"{role} {n:,}" for role, n in c.answers.items()) or "none"
    console.print(f"{result.deployment}: {c.requests:,} requests ({c.rows:,} rows) logged "
                  f"{result.first:%Y-%m-%d %H:%M:%S} .. {result.last:%Y-%m-%d %H:%M:%S} UTC; "
                  f"answers: {answers}; fallback answers {c.fallbacks:,}; off-path rows "
                  f"{c.off_path:,}; rejected rows {c.rejected:,}; requests without a logged "
                  f"answer {c.unanswered:,}")
    names = _names(result)
    table(["role", "model", "version", "rows", "scored", "rejected", "task"],
          [(a.role, a.model, "file" if a.version is None else a.version, a.rows, a.scored,
            a.rejected, a.task or "-") for a in result.arms], title="models")
    _print_pairs(result, names)
    _print_quantiles(result, names)
    _print_performance(result, names)
    for canary in result.canaries:
        table(["window", "from", "requests", "canary drift", "finding"],
              [(w.index, f"{w.start:%m-%d %H:%M}", w.requests,
                _said(w.drift), w.finding.value) for w in canary.windows],
              title=f"{canary.canary}: {canary.score} per {canary.window} against "
                    f"{canary.reference}")
        for w in canary.windows:
            console.print(w.verdict)
    for note in result.notes:
        console.print(f"note: {note}")
    if output is not None:
        console.print(f"wrote {output}")


def _said(drift: Any) -> str:
    from ..evaluation.canary import said

    return "-" if drift is None else said(drift)


def _print_pairs(result: Any, names: dict[str, str]) -> None:
    labelled = result.labels is not None
    rows = [(names[p.a], names[p.b], p.shared, f"{a.rate:.1%}", figure(a.positive.p_value, 3),
             *([figure(a.correct.p_value, 3) if a.correct else "-"] if labelled else []))
            for p in result.pairs if (a := p.agreement) is not None]
    if rows:
        table(["A", "B", "shared", "agree", "McNemar p", *(["p right"] if labelled else [])],
              rows, title=f"labels: agreement, McNemar's test of predicting "
                          f"{result.positive}" + (" and of being right" if labelled else ""))
    rows = [(names[p.a], names[p.b], f"{d.mean:+.3g}" if (d := p.difference) else "-",
             _interval(d.low, d.high) if d else "-", figure(q.largest, 3), figure(q.ks, 3))
            for p in result.pairs if (q := p.quantiles) is not None]
    if rows:
        confidence = next((p.difference.confidence for p in result.pairs if p.difference),
                          0.95)
        table(["A", "B", "mean", f"{confidence:.0%} CI", "largest gap", "KS D"], rows,
              title=f"{result.score}: B - A (paired when they scored the same requests)")
    for p in result.pairs:
        for note in p.notes:
            console.print(f"{names[p.a]} / {names[p.b]}: {note}")


def _print_quantiles(result: Any, names: dict[str, str]) -> None:
    rows = []
    for p in result.pairs:
        q = p.quantiles
        if q is not None:
            diffs = q.differences
            rows.append((names[p.a], names[p.b], *(
                f"{diffs[q.levels.index(x)]:+.3f}" if x in q.levels else "-" for x in LEVELS)))
    if rows:
        table(["A", "B", *(f"{x:.0%}" for x in LEVELS)], rows,
              title=f"quantiles of {result.score}: B - A")


def _print_performance(result: Any, names: dict[str, str]) -> None:
    for p in result.pairs:
        perf = p.performance
        if perf is None:
            continue
        how = "paired" if perf.paired else "independent"
        table(["metric", "A", "B", "B-A", f"{perf.confidence:.0%} interval", "better"],
              [(m.metric, figure(m.a), figure(m.b),
                "-" if m.difference is None else f"{m.difference:+.4g}",
                _interval(m.low, m.high), names.get(m.better, "-")) for m in perf.metrics],
              title=f"{names[p.b]} vs {names[p.a]}: {perf.rows_a}"
                    + ("" if perf.paired else f" / {perf.rows_b}") + f" labelled ({how} "
                    f"bootstrap, {perf.replicates} resamples, seed {perf.seed})")
    if result.labels is not None:
        a = result.labels
        console.print(f"labels: {a.read} read, {a.matched} matched ({a.scored} scored), "
                      f"{a.unmatched} unmatched, {a.duplicate_rows} duplicate rows, "
                      f"{a.null_id} without id, {a.null_target} without target")


__all__ = ["compare"]
