"""NATS JetStream as the event source, behind the same interface as `RedisEvents`.

A durable pull consumer is the consumer group: every worker fetching from it shares the
stream. An event is acknowledged after its effect is written; one a worker held past
`ack_wait` (a dead worker's) is delivered again by the server, with its delivery count.
nats-py is asynchronous; this class runs its client on a private event loop thread and
offers the synchronous calls the worker makes.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ScorehouseError
from .events import Event, body_fields, dead_record, json_body
from .order import Position


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` is one or more."""
    p, t = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(t) > i
        if i >= len(t) or (token != "*" and token != t[i]):
            return False
    return len(p) == len(t)


class NatsEvents:
    """A worker on a durable JetStream pull consumer (`group`) of `subject`."""

    transient: tuple[type[Exception], ...] = ()  # nats-py reconnects by itself

    def __init__(self, url: str, group: str, consumer: str, *, claim_idle_ms: int = 30_000):
        parts = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.subject: str = params.get("subject") or params.get("stream") or ""
        if not self.subject:
            raise ScorehouseError("a NATS source needs ?subject=NAME, e.g. "
                                  "nats://host:4222?subject=events")
        # The JetStream stream that keeps the subject: named in the URL, else found on the
        # server (a stream someone else made, perhaps with wildcards), else made by us.
        self.stream_name: str | None = params.get("js_stream")
        self.server = f"nats://{parts.netloc}"
        self.group, self.consumer = group, consumer
        self.stream = self.subject  # dead letters go to <subject>.dead
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scorehouse-nats",
                                        daemon=True)
        self._thread.start()
        self._pending: dict[str, Any] = {}  # event id -> message, until acked or dead
        self._kept: set[str] = set()  # output subjects known to be kept by a stream
        self._run(self._connect(claim_idle_ms / 1000))

    def _run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self, ack_wait: float) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        try:
            self.nc = await nats.connect(self.server, connect_timeout=5,
                                         max_reconnect_attempts=-1)
        except Exception as e:  # nats-py raises several kinds; the message says which
            raise ScorehouseError(f"cannot reach NATS at {self.server}: {e}") from None
        self.js = self.nc.jetstream()
        self.stream_name = await self._stream_of_subject()
        await self._keep(f"{self.subject}.dead")
        info = await self.js.stream_info(self.stream_name)
        # Sequences start again in a stream deleted and created again: its creation time
        # names the "partition" its positions belong to, so they are never compared with
        # the old stream's (see order.Position).
        self._epoch = int(info.created.timestamp() * 1000) if info.created else 0
        self.sub = await self.js.pull_subscribe(
            self.subject, durable=self.group, stream=self.stream_name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=max(ack_wait, 0.5),
                                  max_deliver=-1))

    async def _stream_of_subject(self) -> str:
        """The stream that keeps `subject`: `js_stream` if given (it must exist or be made
        here), else the one the server says keeps it, else a new one named after it."""
        import nats.js.errors

        if self.stream_name is None:
            try:
                return await self.js.find_stream_name_by_subject(self.subject)
            except nats.js.errors.NotFoundError:
                self.stream_name = self.subject.replace(".", "_").upper()
        try:
            info = await self.js.stream_info(self.stream_name)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_stream(name=self.stream_name,
                                         subjects=[self.subject, f"{self.subject}.dead"])
            except nats.js.errors.Error as e:
                raise ScorehouseError(
                    f"cannot create JetStream stream {self.stream_name!r} for subject "
                    f"{self.subject!r}: {e}; name the stream that keeps it with "
                    "&js_stream=NAME (see `nats stream ls`)") from None
            return self.stream_name
        if not any(_subject_matches(p, self.subject) for p in info.config.subjects or []):
            raise ScorehouseError(
                f"JetStream stream {self.stream_name!r} does not keep subject {self.subject!r} "
                f"(it keeps {', '.join(info.config.subjects or []) or 'nothing'}); name the "
                "stream that does with &js_stream=NAME, or leave js_stream out to let "
                "scorehouse find it")
        return self.stream_name

    async def _keep(self, subject: str) -> None:
        """Make sure a stream keeps `subject` (dead letters, outputs): a stream of its own,
        unless one already does."""
        import nats.js.errors

        if subject in self._kept:
            return
        try:
            await self.js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_stream(name=re.sub(r"[^A-Za-z0-9_-]", "_", subject).upper(),
                                         subjects=[subject])
            except nats.js.errors.Error:  # made meanwhile by another worker
                await self.js.find_stream_name_by_subject(subject)
        self._kept.add(subject)

    def read(self, count: int, block_ms: int) -> list[Event]:
        """Up to `count` events, waiting at most `block_ms` for the first."""
        return self._run(self._read(count, block_ms / 1000), timeout=block_ms / 1000 + 30)

    async def _read(self, count: int, timeout: float) -> list[Event]:
        try:
            msgs = await self.sub.fetch(count, timeout=max(timeout, 0.05))
        except asyncio.TimeoutError:  # nats-py raises its own subclass, or this one itself
            return []
        events = []
        for m in msgs:
            meta = m.metadata
            published_ms = int(meta.timestamp.timestamp() * 1000)  # when the server stored it
            eid = f"{published_ms}-{meta.sequence.stream}"
            self._pending[eid] = m
            events.append(Event(eid, body_fields(m.data), meta.num_delivered,
                                Position(self._epoch, (meta.sequence.stream,)), published_ms))
        return events

    def deliveries(self, event_id: str) -> int:
        """How many times the server has delivered the event."""
        m = self._pending.get(event_id)
        return m.metadata.num_delivered if m is not None else 1

    def ack(self, ids: list[str]) -> None:
        """Acknowledge events whose effect is written."""
        msgs = [self._pending.pop(i) for i in ids if i in self._pending]

        async def ack_all() -> None:
            await asyncio.gather(*(m.ack() for m in msgs))
        if msgs:
            self._run(ack_all())

    def dead_letter(self, event: Event, reason: str) -> None:
        """Publish the event with its reason on `<subject>.dead`, then stop redelivering it."""
        m = self._pending.pop(event.id, None)
        body = json_body(dead_record(event, reason))

        async def move() -> None:
            await self.js.publish(f"{self.subject}.dead", body)
            if m is not None:
                await m.term()
        self._run(move())

    def publish(self, stream: str, entries: list[tuple[str, Mapping[str, Any]]]) -> None:
        """Publish records as JSON on subject `stream`, kept by a JetStream stream of its own."""

        async def send() -> None:
            await self._keep(stream)
            for _, record in entries:  # in order; each waits for the server's acknowledgement
                await self.js.publish(stream, json_body(record))

        self._run(send())

    def close(self) -> None:
        """Close the connection and stop the loop thread."""
        # Every ack and publish was awaited, so nothing is in flight. (A drain would wait
        # its whole timeout, 30 s, after a fetch that found nothing.)
        self._run(self.nc.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
