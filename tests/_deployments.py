"""What the deployment tests share: tiny models packaged as artifacts, whose failures are
chosen by their input. `double` answers 2x; `boom` raises when a row has a negative x;
`hole` gives NaN (a model error) for x above 8; `slow` sleeps 0.2 s for a negative x.
Each works on the training rows (packaging scores them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import scorehouse


def _double(frame):
    return frame["x"].to_numpy() * 2.0


def _boom(frame):
    if (frame["x"] < 0).any():
        raise RuntimeError("boom on a negative x")
    return frame["x"].to_numpy() * 3.0


def _hole(frame):
    x = frame["x"].to_numpy()
    return np.where(x > 8, np.nan, x * 5.0)


def _slow(frame):
    import time as t

    if (frame["x"] < 0).any():
        t.sleep(0.2)
    return frame["x"].to_numpy() * 4.0


def tiny_models(folder: Path) -> dict[str, str]:
    """name -> path of each tiny model packaged in `folder`."""
    train = pd.DataFrame({"x": np.arange(8, dtype=float)})
    fns = {"double": _double, "boom": _boom, "hole": _hole, "slow": _slow}
    return {n: str(scorehouse.package(fn, train, name=n, path=folder / f"{n}.shz",
                                      compile=False)) for n, fn in fns.items()}
