"""The stream channel's entry point: one `WorkerOptions` in, a ready `StreamWorker` out.

`scorehouse stream` (score with a model, or `--deployment`) and `scorehouse enrich` (no
scorer: publish event + profile) build their worker here, from the URLs the user typed
(see `addresses`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from ..monitor.live import LiveMonitor
from ..monitor.log import Channel, LogOptions
from ..routing.following import Following
from ..scorer import Scorer
from . import addresses
from .deployed import DeployedScoring
from .reducers import load_reducer
from .worker import StreamWorker


@dataclass
class WorkerOptions:
    """Where events come from, where profiles and outputs go, and how the worker reads.

    `source`: redis://…?stream=, nats://…?subject= or kafka://…?topic=; `profiles`:
    redis://… (default: the source's Redis) or postgresql://…?table=; `sink`: the output
    stream (a bare name or a URL; default `<source stream>:<output_suffix>` on Redis,
    `<subject/topic>.<output_suffix>` on NATS and Kafka).
    """

    source: str
    #: Event field naming the entity (with PostgreSQL profiles, also the table's key column).
    key: str
    profiles: str | None = None
    #: Redis profile hashes are named `<prefix><key>`.
    prefix: str = "profile:"
    sink: str | None = None
    output_suffix: str = "scores"
    #: How an event changes a profile: a JSON spec, a .json file, module:function, or None.
    reducer: str | None = None
    group: str = "scorehouse"
    #: Consumer name; None: `<host>-<pid>`.
    consumer: str | None = None
    #: Events per round trip.
    batch: int = 200
    #: Deliveries before a poison event is dead-lettered.
    max_attempts: int = 3
    #: Reclaim events a consumer held this long (NATS: the ack wait; Kafka: the retry delay).
    claim_idle_ms: int = 30_000
    #: The prediction log of every scored profile, logged under its event's id (None: none).
    log: LogOptions | None = None
    #: Keep a live drift window against the model's training baseline (on the metrics).
    drift: bool = True


def open_worker(scorer: Scorer | None, options: WorkerOptions, *,
                deployment: Following | None = None) -> StreamWorker:
    """A worker consuming `options.source` (scoring with `scorer`, or through the followed
    `deployment`, or only enriching when neither), connected to its event source and
    profile store.

    Raises:
        ScorehouseError: an unsupported or incomplete URL, a server that cannot be reached,
            or a reducer that cannot be loaded.
    """
    o = options
    name = o.consumer or f"{socket.gethostname()}-{os.getpid()}"
    store = addresses.profiles_url(o.profiles, o.source)
    server = addresses.output_server(store, o.source)
    events = addresses.open_events(o.source, o.group, name, claim_idle_ms=o.claim_idle_ms)
    out = addresses.output_stream(o.sink, server,
                                  addresses.default_output(events, server, o.output_suffix))
    profiles = addresses.open_profiles(store, events, key=o.key, prefix=o.prefix)
    live = None
    scoring = scorer is not None or deployment is not None
    if scoring and (o.log is not None or o.drift):
        live = LiveMonitor(o.log, Channel.STREAM, drift=o.drift)
        if scorer is not None:
            live.watch(scorer)  # a deployment's scorers are watched as they score
    routed = DeployedScoring(deployment, live) if deployment is not None else None
    return StreamWorker(scorer, events, profiles, load_reducer(o.reducer), key=o.key,
                        output_stream=out, batch=o.batch, max_attempts=o.max_attempts,
                        live=live, deployment=routed)
