"""The error rate alert rules watch: rows the model itself failed on reach the prediction
log (refused as "model error: ..."), also when the whole call fails and raises, so a
window's `error_rate` and an `error_rate` rule see them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scorehouse
from scorehouse.errors import ModelError
from scorehouse.monitor import check_log, log_windows, parse_rules
from scorehouse.monitor.log import LogOptions, PredictionLogger, read_log


def _fragile(frame):
    """Fails a batch holding a negative x (isolated to those rows), and every call whose
    x are all above 1000 (the whole call fails: the model is 'down' for them)."""
    x = frame["x"].to_numpy()
    if (x > 1000).all() or (x < 0).any():
        raise RuntimeError("backend unavailable")
    return x * 2.0


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    d = tmp_path_factory.mktemp("fragile")
    train = pd.DataFrame({"x": np.arange(50, dtype=float)})
    path = scorehouse.package(_fragile, train, name="fragile", path=d / "fragile.shz",
                              compile=False)
    return scorehouse.load(str(path), trust=True)


# (the calls made, rows logged, rows the model failed on)
CALLS = {
    "rows isolated in a batch": ([[1.0, -1.0, 2.0, -3.0, 4.0]], 5, 2),
    "one row": ([[-1.0], [3.0]], 2, 1),
    "the whole call fails": ([[2000.0, 3000.0, 4000.0], [1.0]], 4, 3),
}


@pytest.mark.parametrize("case", CALLS, ids=list(CALLS))
def test_model_errors_are_logged_and_counted_in_the_window(fragile, tmp_path, case):
    calls, logged, failed = CALLS[case]
    root = tmp_path / "log"
    with PredictionLogger(LogOptions(to=str(root))) as logger:
        logger.attach(fragile)
        try:
            for xs in calls:
                data = {"x": xs[0]} if len(xs) == 1 else pd.DataFrame({"x": xs})
                try:
                    fragile.predict(data)
                except ModelError:
                    assert case == "the whole call fails"
        finally:
            fragile.hooks.clear()
    table = read_log(root)
    assert table.num_rows == logged  # every row read is logged, scored or refused
    reasons = [r for r in table.column("reject").to_pylist() if r]
    assert sum(r.startswith("model error: RuntimeError: backend unavailable")
               for r in reasons) == failed
    (window,) = log_windows(fragile, window="all", source=root)
    assert window.error_rate == pytest.approx(failed / logged)


def test_an_error_rate_rule_fires_and_input_refusals_are_not_errors(fragile, tmp_path):
    root = tmp_path / "log"
    with PredictionLogger(LogOptions(to=str(root))) as logger:
        logger.attach(fragile)
        fragile.predict(pd.DataFrame({"x": [1.0, "not a number", 2.0, 3.0]}))  # schema refusal
        fragile.hooks.clear()
    (window,) = log_windows(fragile, window="all", source=root)
    assert window.error_rate == 0.0 and window.report.quality is not None

    with PredictionLogger(LogOptions(to=str(root))) as logger:
        logger.attach(fragile)
        with pytest.raises(ModelError):
            fragile.predict(pd.DataFrame({"x": [5000.0, 6000.0]}))
        fragile.hooks.clear()
    rules = parse_rules('[[rule]]\nname = "errors"\nfigure = "error_rate"\nop = ">"\n'
                        'threshold = 0.2\nwindows = 1\n')
    checked = check_log(fragile, rules, window="all", source=root, state=tmp_path / "s.json")
    assert checked.result.firing == ("errors",) and checked.exit_code == 1
