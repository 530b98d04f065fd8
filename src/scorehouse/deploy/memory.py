"""How much memory a server of some models needs, measured on the real thing: `scorehouse
serve` is started on a free loopback port, waited for until ready, sent one scoring request
per model (the example record of its OpenAPI document), and its resident memory is read
from /proc (Linux) before it is stopped.

A separate process, so the figure is that of a server alone, not of the process asking
(which may have loaded other libraries or models already); and the server itself, not a
re-enactment of it, so nothing here depends on the serving code's internals.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScorehouseError

#: The `scorehouse` command run by this interpreter (no console script needed on PATH).
_CLI = [sys.executable, "-c", "from scorehouse.cli.app import main; main()"]


@dataclass(frozen=True)
class Memory:
    """A ready server's memory in MiB: `resident` (VmRSS) after one request per model,
    `peak` the most it held since it started (VmHWM, loading included)."""

    resident: float
    peak: float

    def to_dict(self) -> dict[str, float]:
        """The `--json` form."""
        return {"resident_mib": round(self.resident, 1), "peak_mib": round(self.peak, 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ScorehouseError(f"/proc/{pid}/status has no {field}: memory is measured on Linux")


def _get(url: str, body: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as r:
        return bytes(r.read())


def measure(refs: list[str], *, registry: str | None = None, artifacts: str | None = None,
            runtime: str | None = None, trust: bool = False, timeout: float = 300) -> Memory:
    """The memory of `scorehouse serve REFS` once ready and warm (see the module docstring).

    Raises:
        ScorehouseError: the server exited (a model that does not load: its last line of
            stderr), was not ready within `timeout` seconds, or refused the example request.
    """
    port = _free_port()
    root = [*(["--registry", registry] if registry else []),
            *(["--artifacts", artifacts] if artifacts else [])]
    options = [*(["--runtime", runtime] if runtime else []), *(["--trust"] if trust else [])]
    proc = subprocess.Popen([*_CLI, *root, "serve", *refs, "--port", str(port), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base, timeout)
        schemas = json.loads(_get(f"{base}/openapi.json"))["components"]["schemas"]
        for key, schema in schemas.items():
            if key.endswith("_record") and schema.get("examples"):
                model = key.removesuffix("_record")
                _get(f"{base}/models/{model}/predict", json.dumps(schema["examples"][0]).encode())
        return Memory(_status_mib(proc.pid, "VmRSS"), _status_mib(proc.pid, "VmHWM"))
    except urllib.error.URLError as e:
        raise ScorehouseError(f"measuring the models' memory: the server refused {e}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[str], base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            raise ScorehouseError("measuring the models' memory: the server stopped: "
                                  + (lines[-1] if lines else f"exit {proc.returncode}"))
        try:
            _get(f"{base}/v2/health/ready")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise ScorehouseError(f"measuring the models' memory: the server was not ready in {timeout:g} s")
