"""How much memory a `scorehouse serve` process needs for some models, measured: a fresh
process imports the serving stack, loads and prepares the models as the server does, scores
one example record with each, and reports its resident memory (Linux /proc).

Run in a subprocess (`measure`), so the figure is that of a server alone, not of the
process asking (which may have loaded other libraries or models already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScorehouseError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Memory:
    """A serving process' resident memory, in MiB: `base` with the serving stack imported and
    no model, `loaded` after loading the models and one scoring call each, `peak` the most
    it held (VmHWM)."""

    base: float
    loaded: float
    peak: float

    @property
    def models(self) -> float:
        """What the models added (MiB)."""
        return self.loaded - self.base

    def to_dict(self) -> dict[str, float]:
        """The `--json` form."""
        return {"base_mib": round(self.base, 1), "loaded_mib": round(self.loaded, 1),
                "peak_mib": round(self.peak, 1), "models_mib": round(self.models, 1)}


def measure(settings_json: str, timeout: float = 600) -> Memory:
    """The memory of a server for `settings_json` (a `ServeSettings.to_json()`), measured
    in a fresh process of this interpreter.

    Raises:
        ScorehouseError: the process failed (a model that does not load: its last line).
    """
    p = subprocess.run([sys.executable, "-m", "scorehouse.deploy.memory"], input=settings_json,
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ScorehouseError(f"measuring the models' memory failed: {last}")
    return Memory(**json.loads(p.stdout.strip().splitlines()[-1]))


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ScorehouseError(f"/proc/self/status has no {field} (not Linux?)")


def main() -> None:
    """The measuring process: settings (JSON) on stdin, a `Memory` as JSON on stdout."""
    from ..serve.entry import app_from_settings
    from ..serve.openapi import example_record
    from ..serve.settings import ServeSettings

    settings = ServeSettings.from_json(sys.stdin.read())
    base = _status_mib("VmRSS")
    try:
        app = app_from_settings(settings, preload=True)
        app.service.watch = False
        app.service.prepare()
        for served in app.service.models.models.values():
            served.scorer.predict(example_record(served.scorer))
    except ScorehouseError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"base": base, "loaded": _status_mib("VmRSS"),
                      "peak": _status_mib("VmHWM")}))


if __name__ == "__main__":
    main()
