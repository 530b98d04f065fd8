"""Building the app from `scorehouse serve` settings, in the CLI or in each worker process."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ScorehouseError
from ..registry.refs import ModelRef
from ..schema import ColumnPolicy
from .app import create_app
from .auth import ApiKeys
from .deployments import DeploymentSet
from .fastpath import FastPath
from .limits import Limits
from .models import ModelSet
from .settings import ServeSettings


def app_from_settings(s: ServeSettings, preload: bool = False,
                      mounts: Mapping[str, Any] | None = None, watch: bool = True) -> FastPath:
    """The app for the settings of `scorehouse serve` (models and deployments load at
    start-up, or now), with other ASGI apps at path prefixes (`mounts`, as `create_app`
    takes them); `watch`: follow the registry's alias moves and deployment changes in a
    background thread (a Lambda function, which has none, checks between invocations)."""
    registry = None
    if s.deployments or not all(ModelRef.parse(r).is_path for r in s.refs):
        from ..registry import Registry  # SQLAlchemy only when needed

        registry = Registry(s.registry, s.artifacts)
    keys = ApiKeys(s.api_keys, s.api_key_file)
    models = ModelSet(s.refs, registry, runtime=s.runtime, trust=s.trust,
                      accept_parity_difference=s.accept_parity_difference,
                      pinned_cache=s.pinned_cache)
    deployments = DeploymentSet(s.deployments, registry, runtime=s.runtime,
                                accept_parity_difference=s.accept_parity_difference)
    if preload:
        models.load_all()
    limits = Limits.from_env(max_body=s.max_body, timeout=s.timeout, max_rows=s.max_rows,
                             max_rejects=s.max_rejects, read_timeout=s.read_timeout)
    app = create_app(models, batching=s.batching, api_keys=keys, limits=limits,
                     columns=ColumnPolicy.parse(s.columns), log=s.log_options(),
                     drift=s.drift, mounts=mounts, deployments=deployments, watch=watch)
    if preload:
        # The deployments (with the log's hooks on their scorers), then what readiness
        # waits for: a process serving this app is ready before it accepts a connection.
        app.service.load()
        app.service.prepare()
    return app


def app_from_env() -> FastPath:
    """What uvicorn's worker processes import: settings from $SCOREHOUSE_SERVE_ARGS.

    The models load and the service is prepared (`Service.prepare`) before the app is
    returned, as `scorehouse serve` does with one worker: a worker process accepts no
    connection from the shared socket until it is ready, so a ready answer from one worker
    never hides another that would still answer 503.
    """
    return app_from_settings(ServeSettings.from_json(os.environ["SCOREHOUSE_SERVE_ARGS"]),
                             preload=True)


def is_loopback(host: str) -> bool:
    """True when `host` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (`host`, `port`), before anything is announced or started.

    Raises:
        ScorehouseError: the address cannot be bound (a port in use, an address this machine
            does not have, a port below 1024 without the right), naming it and the reason.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = " (another server listens there: stop it, or choose --port)" \
            if e.errno == errno.EADDRINUSE else ""
        raise ScorehouseError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    sock.set_inheritable(True)
    return sock


def exposure_warning(host: str, keys: bool, tls: bool) -> str | None:
    """What is unsafe about listening on `host` without API keys and/or TLS (None if nothing)."""
    if is_loopback(host) or (keys and tls):
        return None
    problems = []
    if not keys:
        problems.append("no API key is required, so anyone who can reach it can score and "
                        "load any registered version (--api-key / --api-key-file)")
    if not tls:
        problems.append("traffic is not encrypted" + (", API keys included" if keys else "")
                        + " (--ssl-certfile / --ssl-keyfile, or a TLS-terminating proxy)")
    return f"listening on {host}, beyond this machine: " + "; ".join(problems)


def tls_options(certfile: Path | None, keyfile: Path | None) -> dict[str, str]:
    """uvicorn's ssl_certfile / ssl_keyfile, checked now (ScorehouseError naming the file)."""
    if certfile is None:
        if keyfile is not None:
            raise ScorehouseError("--ssl-keyfile needs --ssl-certfile")
        return {}
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    except (OSError, ssl.SSLError) as e:
        raise ScorehouseError(f"cannot use the TLS certificate {certfile}"
                              f"{f' with key {keyfile}' if keyfile else ''}: {e}") from None
    return {"ssl_certfile": str(certfile), **({"ssl_keyfile": str(keyfile)} if keyfile else {})}
