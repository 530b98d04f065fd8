"""A separate process that races other processes on one registry (used by test_registry.py).

Usage: python _register_worker.py '<json spec>'. The spec names the registry `url`, the
artifact `store`, a `ready` file to create once the (slow) imports are done and a `go` file
to wait for, so that every worker starts its writes at the same moment. Then:

- mode "register": register `artifact` `count` times as `user`;
- mode "open": nothing more (opening a fresh registry is the race);
- mode "promote": promote `name/<v>` to `alias` for each v in `versions`, as `user`,
  sleeping `pause` seconds before each (SQLite's busy handler otherwise lets one process
  finish all its promotions before the next gets the lock).

Prints one JSON line: the registered version numbers, or one {version, changed,
from_version} per promotion.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    spec = json.loads(sys.argv[1])
    from scorehouse.registry import Registry  # the slow part: import before saying "ready"

    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            print("never told to go", file=sys.stderr)
            return 2
        time.sleep(0.002)

    # Opening the registry is part of the race: on a fresh database every worker migrates.
    reg = Registry(spec["url"], artifacts=spec["store"])
    out: list = []
    try:
        if spec["mode"] == "open":
            pass
        elif spec["mode"] == "register":
            for _ in range(spec["count"]):
                out.append(reg.register(spec["artifact"], user=spec["user"], allow_duplicate=True).version)
        elif spec["mode"] == "promote":
            for v in spec["versions"]:
                time.sleep(spec.get("pause", 0))  # let the others in between our writes
                move = reg.promote(f"{spec['name']}/{v}", spec["alias"], user=spec["user"],
                                   reason=f"{spec['user']} -> {v}")
                out.append({"version": move["version"], "changed": move["changed"],
                            "from_version": move["from_version"]})
        else:
            print(f"unknown mode {spec['mode']!r}", file=sys.stderr)
            return 2
    finally:
        reg.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
