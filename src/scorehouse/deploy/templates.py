"""The texts `bundle` and `container` write: install.sh, the Containerfile, its entrypoint.

Kept as `string.Template`s in a module (not package data): `$name` is filled in, `$$` is a
literal dollar for the shell.
"""

from __future__ import annotations

from string import Template

#: bundle/install.sh: the bundle alone, no index, every file checked against its hash; then
#: `scorehouse doctor` checks the result (exit 0, or its mismatch code).
INSTALL_SH = """\
#!/bin/sh
# Install this scorehouse bundle with pip from the bundle alone: no index, no network, every
# wheel checked against its sha256 in requirements.lock; then check the result with
# `scorehouse doctor`. PYTHON picks the interpreter (default: python3, e.g. a fresh venv's
# bin/python); extra arguments go to `pip install`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
"$python" -m pip install --no-index --find-links "$here/wheels" --require-hashes \\
    --only-binary=:all: --no-cache-dir --disable-pip-version-check \\
    -r "$here/requirements.lock" "$@"
"$python" -m scorehouse.cli.app doctor --bundle "$here"
"""

#: The HEALTHCHECK's command: the V2 readiness route, on the port the server listens on.
HEALTHCHECK_PY = ("import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s"
                  "/v2/health/ready' % os.environ['SCOREHOUSE_PORT'], timeout=2)")

#: ctx/Containerfile. Filled: base, port, uid, models (for the label). Two stages: the wheels
#: stay in the first, the image gets the installed venv, the lock and the artifacts.
CONTAINERFILE = Template("""\
# A scorehouse serving image, written by `scorehouse container` for: $models
# Build:  podman build --format docker --network none -t IMAGE .   (docker build -t IMAGE .)
# Run:    podman run --read-only -p $port:$port IMAGE               (docker: add --tmpfs /tmp)
# The install needs no network: --network none at build proves it.
ARG BASE=$base

FROM $${BASE} AS install
COPY bundle /opt/scorehouse/bundle
# Offline: the bundle's wheels only (--no-index, --require-hashes), then `scorehouse doctor`.
RUN python3 -m venv /opt/scorehouse/venv \\
 && PYTHON=/opt/scorehouse/venv/bin/python PIP_NO_INDEX=1 \\
    sh /opt/scorehouse/bundle/install.sh --quiet

FROM $${BASE}
# Serve settings (`scorehouse serve` options) as environment variables: the entrypoint
# passes SCOREHOUSE_HOST/PORT/WORKERS/RUNTIME/BATCHING, serve reads the others itself
# (SCOREHOUSE_MAX_ROWS, _MAX_REJECTS, _READ_TIMEOUT, _PINNED_CACHE, _API_KEY, _LOG_TO, ...).
# Everything written at run time goes under /tmp (a tmpfs with --read-only) or a volume.
ENV SCOREHOUSE_BUNDLE=/opt/scorehouse/bundle \\
    SCOREHOUSE_HOME=/tmp/scorehouse \\
    SCOREHOUSE_HOST=0.0.0.0 \\
    SCOREHOUSE_PORT=$port \\
    SCOREHOUSE_WORKERS=1 \\
    SCOREHOUSE_RUNTIME= \\
    SCOREHOUSE_BATCHING=auto \\
    HOME=/tmp \\
    NUMBA_CACHE_DIR=/tmp/numba \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PATH=/opt/scorehouse/venv/bin:$$PATH
COPY --from=install /opt/scorehouse/venv /opt/scorehouse/venv
COPY bundle/bundle.json bundle/requirements.lock /opt/scorehouse/bundle/
COPY bundle/artifacts /opt/scorehouse/bundle/artifacts
COPY entrypoint.sh /opt/scorehouse/entrypoint.sh
RUN getent passwd $uid > /dev/null \\
 || useradd --system --uid $uid --gid 0 --home-dir /tmp --no-create-home \\
      --shell /usr/sbin/nologin scorehouse

USER $uid:0
EXPOSE $port
LABEL org.opencontainers.image.title="scorehouse" \\
      org.opencontainers.image.description="scorehouse serve: $models"
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "$healthcheck"]
ENTRYPOINT ["/opt/scorehouse/entrypoint.sh"]
CMD []
""")

#: ctx/entrypoint.sh. Filled: artifacts (their paths, space-separated, shell-quoted).
ENTRYPOINT_SH = Template("""\
#!/bin/sh
# scorehouse image entrypoint: check the environment and every artifact's sha256 against the
# bundle (`scorehouse doctor`, exit 5 or 8 on a mismatch), then serve the baked-in models.
# The artifacts are served with --trust because doctor has just matched each one to the hash
# recorded when the bundle was built (from the registry, or trusted paths). Arguments given
# to the container go to `scorehouse serve`.
set -eu
mkdir -p "$${SCOREHOUSE_HOME:-/tmp/scorehouse}" "$${NUMBA_CACHE_DIR:-/tmp/numba}"
scorehouse doctor --bundle "$$SCOREHOUSE_BUNDLE" --quiet
set -- --host "$$SCOREHOUSE_HOST" --port "$$SCOREHOUSE_PORT" \\
    --workers "$$SCOREHOUSE_WORKERS" --batching "$${SCOREHOUSE_BATCHING:-auto}" "$$@"
if [ -n "$${SCOREHOUSE_RUNTIME:-}" ]; then set -- --runtime "$$SCOREHOUSE_RUNTIME" "$$@"; fi
exec scorehouse serve --trust $artifacts "$$@"
""")
